"""Render RESULTS.md's table from a sweep folder of an A-GEM paper preset.

One row per method and set of values, in the order of the paper's table (VAN, EWC, PI,
MAS, RWALK, PROG-NN, GEM, A-GEM, MULTI-TASK, then Replay and any other strategy): the
hyperparameters it ran with (those DIR/published.json or DIR/selection.json name, else the
learning rate, and the options that set a row apart), the complete seeds out of the sweep's
(DIR/sweep.toml; which ones when not all, the diverged ones with the reported task they
diverged in, the unfinished ones and those not run yet), A_T (%), F_T and LCA_10 as
mean ± std over the complete seeds, and the training time; beside it, the paper's
Permuted MNIST values (ICLR'19, arXiv:1812.00420v2, Appendix E, Table 4 and Table 7).
`--total` adds a line with the training time of all runs in the table.

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
from agem.sweeps.spec import SpecError, load_spec

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


def _extras(config: dict[str, Any]) -> list[str]:
    """The options besides the chosen ones that tell a method's row apart."""
    extras = []
    if config.get("strategy") == "gem" and config.get("memory_strength") is not None:
        extras.append(f"margin {config['memory_strength']:g}")
    if config.get("strategy") == "replay" and config.get("mem_size") is not None:
        extras.append(f"{config['mem_size']:,} slots")
    if config.get("task_labels"):
        extras.append("task labels")
    arguments = config.get("strategy_args")  # a strategy given by its import path
    if isinstance(arguments, dict):
        extras += [f"{k} {json.dumps(v)}" for k, v in sorted(arguments.items())]
    return extras


def _ranges(numbers: list[int]) -> str:
    """0, 1, 2, 4 -> "0-2, 4"."""
    runs: list[list[int]] = []
    for n in sorted(set(numbers)):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def _keys(strategy: str, choices: dict[str, dict[str, Any]]) -> tuple[str, ...]:
    """The hyperparameters a strategy's rows are told apart by: those its choices name."""
    chosen = choices.get(strategy)
    return tuple(k for k in CHOSEN_KEYS if k in chosen) if chosen else ("lr",)


def _values_cell(config: dict[str, Any], keys: tuple[str, ...]) -> str:
    """A row's values column: its hyperparameters, then the options that set it apart."""
    parts = [_describe({k: config[k] for k in keys if k in config}), *_extras(config)]
    return ", ".join(p for p in parts if p)


def _planned(folder: Path, choices: dict[str, dict[str, Any]]) -> dict[tuple[str, str], list[int]]:
    """Each row's seeds in the sweep's spec, a row being a strategy with one set of values
    (empty when the folder has no spec)."""
    path = folder / "sweep.toml"
    if not path.is_file():
        return {}
    try:
        spec = load_spec(path)
    except SpecError as err:
        raise ValueError(str(err)) from None
    planned: dict[tuple[str, str], list[int]] = {}
    for job in spec.jobs:
        if job.config is not None:
            config = job.config.to_dict()
            strategy = job.config.strategy
            row = (strategy, _values_cell(config, _keys(strategy, choices)))
            planned.setdefault(row, []).append(job.config.seed)
    return planned


def _seed_cell(runs: list[RunRecord], complete: list[RunRecord], planned: list[int]) -> str:
    """The seeds column: "5" when every planned seed is complete, else "K of N (seeds
    ...; what the others are)"; without a plan, the runs in the folder are the plan."""
    seeds = planned or [_seed(r) for r in runs]
    if len(complete) == len(seeds):
        return str(len(complete))
    done = [_seed(r) for r in complete]
    notes = [f"seed{'s' if len(done) > 1 else ''} {_ranges(done)}"] if done else []
    diverged = [r for r in runs if r.status == "diverged"]
    if diverged:
        where = {_diverged_task(r) for r in diverged}
        tasks = sorted(t for t in where if t is not None)
        note = f"{len(diverged)} diverged"
        if tasks and None not in where:
            note += f" in reported task {_ranges(tasks)}"
        notes.append(note)
    others: dict[str, int] = {}
    for r in runs:
        if r.status not in ("complete", "diverged"):
            others[r.status] = others.get(r.status, 0) + 1
    notes += [f"{n} {status}" for status, n in sorted(others.items())]
    missing = len(set(seeds) - {_seed(r) for r in runs})
    if missing:
        notes.append(f"{missing} not run")
    return f"{len(complete)} of {len(seeds)} ({'; '.join(notes)})"


def _seed(run: RunRecord) -> int:
    return int(run.config.get("seed", 0))


def _diverged_task(run: RunRecord) -> int | None:
    """The reported task (1-based) a diverged run stopped in, when its results say."""
    where = run.results.get("diverged")
    if isinstance(where, dict) and isinstance(where.get("experience"), int):
        return int(where["experience"]) + 1
    return None


def total_hours(folder: Path) -> tuple[int, float]:
    """(runs, hours of training) over the complete and diverged runs in `folder`."""
    runs = [r for r in load_runs([folder]) if r.status in ("complete", "diverged")]
    seconds = sum(v for r in runs if (v := r.value("train_seconds")) is not None)
    return len(runs), seconds / 3600.0


def table(folder: Path, *, paper: bool = True) -> str:
    """The Markdown table of the sweep in `folder`."""
    runs = load_runs([folder])
    if not runs:
        raise ValueError(f"{folder}: no runs here")
    choices = _choices(folder)
    planned = _planned(folder, choices)
    head = ["method", "values", "seeds", "A_T (%)", "F_T", "LCA_10", "training (s)"]
    if paper:
        head += ["paper A_T (%)", "paper F_T", "paper LCA_10", "paper time (s, GPU)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(head) - 3)]
    # one row per strategy and set of values, in the paper's order, then the plan's
    groups: dict[tuple[str, str], list[RunRecord]] = {row: [] for row in planned}
    for run in runs:
        strategy = str(run.config.get("strategy"))
        cell = _values_cell(run.config, _keys(strategy, choices))
        groups.setdefault((strategy, cell), []).append(run)
    rank = {strategy: i for i, (strategy, _) in enumerate(ORDER)}
    labels = dict(ORDER)
    for (strategy, cell), mine in sorted(
        ((row, mine) for row, mine in groups.items() if mine),
        key=lambda item: rank.get(item[0][0], len(ORDER)),
    ):
        complete = [r for r in mine if r.status == "complete"]

        def values(key: str, rows: list[RunRecord] = complete) -> list[float]:
            return [v for r in rows if (v := r.value(key)) is not None]

        lca_keys = [k for r in complete for k in r.results if k.startswith("LCA_")]
        lca_key = lca_keys[0] if lca_keys else "LCA_10"
        cells = [
            labels.get(strategy, strategy),
            cell,
            _seed_cell(mine, complete, planned.get((strategy, cell), [])),
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
    parser.add_argument(
        "--total", action="store_true", help="add the training time of all runs in the table"
    )
    args = parser.parse_args(argv)
    try:
        print(table(args.folder, paper=not args.no_paper), end="")
        if args.total:
            runs, hours = total_hours(args.folder)
            print(f"\ntraining time of the {runs} complete and diverged runs: {hours:.1f} h")
    except (OSError, ValueError) as err:
        print(f"results_table: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
