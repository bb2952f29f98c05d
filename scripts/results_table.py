"""Render RESULTS.md's table from a sweep folder of an A-GEM paper preset.

One row per method, in the order of the paper's table (VAN, EWC, PI, MAS, RWALK,
PROG-NN, GEM, A-GEM, MULTI-TASK, then Replay): the hyperparameters it ran with (from
DIR/published.json or DIR/selection.json), the number of complete seeds out of the runs
in the folder (diverged and unfinished ones named), A_T (%), F_T and LCA_10 as
mean ± std over the complete seeds, and the training time; beside it, the paper's
Permuted MNIST values (ICLR'19, arXiv:1812.00420v2, Appendix E, Table 4 and Table 7).

    python scripts/results_table.py sweeps/agem-paper-pfmnist-published
    python scripts/results_table.py sweeps/agem-paper-pfmnist --no-paper > table.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from agem.reporting.compare import RunRecord, load_runs, mean_std

# (strategy, the paper's name)
ORDER = (
    ("naive", "VAN"),
    ("ewc", "EWC"),
    ("si", "PI (SI)"),
    ("mas", "MAS"),
    ("rwalk", "RWALK"),
    ("pnn", "PROG-NN"),
    ("gem", "GEM"),
    ("agem", "A-GEM"),
    ("cumulative", "MULTI-TASK (cumulative)"),
    ("replay", "Replay (reservoir)"),
)
# Permuted MNIST, ICLR'19 Table 4 (A_T %, F_T, LCA_10) and Table 7 (training time, s, GPU);
# PI "fails to train with the cross-validated values" there; MULTI-TASK has A_T only;
# Replay is not in that paper.
PAPER: dict[str, tuple[str, str, str, str]] = {
    "naive": ("47.9 ± 1.32", "0.51 ± 0.01", "0.26 ± 0.006", "186"),
    "ewc": ("68.3 ± 0.69", "0.29 ± 0.01", "0.27 ± 0.003", "403"),
    "si": ("fails to train", "", "", ""),
    "mas": ("69.6 ± 0.93", "0.27 ± 0.01", "0.29 ± 0.003", ""),
    "rwalk": ("85.7 ± 0.56", "0.08 ± 0.01", "0.31 ± 0.005", ""),
    "pnn": ("93.5 ± 0.07", "0", "0.19 ± 0.006", "510"),
    "gem": ("89.5 ± 0.48", "0.06 ± 0.004", "0.23 ± 0.005", "3442"),
    "agem": ("89.1 ± 0.14", "0.06 ± 0.001", "0.29 ± 0.004", "477"),
    "cumulative": ("95.3", "", "", ""),
    "replay": ("", "", "", ""),
}
CHOSEN_KEYS = ("lr", "ewc_lambda", "si_lambda", "mas_lambda", "rwalk_lambda")


def _pm(values: list[float], scale: float, digits: int) -> str:
    mean, std = mean_std([v * scale for v in values])
    if mean is None:
        return ""
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def _choices(folder: Path) -> dict[str, dict[str, Any]]:
    """Each method's hyperparameters as recorded by `--published` or the selection."""
    for name in ("published.json", "selection.json"):
        path = folder / name
        if path.is_file():
            data = json.loads(path.read_text())
            return {k: v for k, v in data.items() if isinstance(v, dict)}
    return {}


def _describe(values: dict[str, Any]) -> str:
    short = {"ewc_lambda": "λ", "si_lambda": "λ", "mas_lambda": "λ", "rwalk_lambda": "λ"}
    return ", ".join(f"{short.get(k, k)} {values[k]:g}" for k in CHOSEN_KEYS if k in values)


def _seed_cell(runs: list[RunRecord], complete: list[RunRecord]) -> str:
    others: dict[str, int] = {}
    for r in runs:
        if r.status != "complete":
            others[r.status] = others.get(r.status, 0) + 1
    cell = f"{len(complete)} of {len(runs)}" if others else str(len(complete))
    if others:
        cell += " (" + ", ".join(f"{n} {s}" for s, n in sorted(others.items())) + ")"
    return cell


def table(folder: Path, *, paper: bool = True) -> str:
    """The Markdown table of the sweep in `folder`."""
    runs = load_runs([folder])
    if not runs:
        raise ValueError(f"{folder}: no runs here")
    choices = _choices(folder)
    head = ["method", "values", "seeds", "A_T (%)", "F_T", "LCA_10", "training (s)"]
    if paper:
        head += ["paper A_T (%)", "paper F_T", "paper LCA_10", "paper time (s, GPU)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(head) - 3)]
    known = {s for s, _ in ORDER}
    extra = sorted({str(r.config.get("strategy")) for r in runs} - known)
    for strategy, label in (*ORDER, *((s, s) for s in extra)):
        mine = [r for r in runs if r.config.get("strategy") == strategy]
        if not mine:
            continue
        complete = [r for r in mine if r.status == "complete"]

        def values(key: str, rows: list[RunRecord] = complete) -> list[float]:
            return [v for r in rows if (v := r.value(key)) is not None]

        lca_keys = [k for r in complete for k in r.results if k.startswith("LCA_")]
        lca_key = lca_keys[0] if lca_keys else "LCA_10"
        chosen = choices.get(strategy) or {k: v for k, v in mine[0].config.items() if k == "lr"}
        cells = [
            label,
            _describe(chosen),
            _seed_cell(mine, complete),
            _pm(values("A_T"), 100.0, 1),
            _pm(values("F_T"), 1.0, 3),
            _pm(values(lca_key), 1.0, 3),
            _pm(values("train_seconds"), 1.0, 0),
        ]
        if paper:
            cells += list(PAPER.get(strategy, ("", "", "", "")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the sweep folder (agem sweep --out DIR)")
    parser.add_argument("--no-paper", action="store_true", help="omit the paper's columns")
    args = parser.parse_args(argv)
    try:
        print(table(args.folder, paper=not args.no_paper), end="")
    except (OSError, ValueError) as err:
        print(f"results_table: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
