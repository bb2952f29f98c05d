"""Compare run folders: load their results, group seeds of one configuration, tabulate.

Runs whose `config.json` agree on everything except the seed and where they were
written (`seed`, `out`, `data_dir`, `download`, `threads`, `environment`) form one
group; each metric is reported as mean ± standard deviation (sample std, n - 1) over
the group's distinct seeds. Only complete runs belong in a comparison: `split_complete`
sets the others aside with their status. A sweep folder stands for its run folders.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agem.bounded import MAX_RESULTS_FILE, describe, load_json

IGNORED_FOR_GROUPING = ("seed", "out", "data_dir", "download", "threads", "environment")
SWEEP_MARKER = "sweep.toml"

# (key in results.json, column header, format)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("A_T", "A_T", ".4f"),
    ("F_T", "F_T", ".4f"),
    ("BWT", "BWT", ".4f"),
    ("FWT", "FWT", ".4f"),
    ("LCA_10", "LCA_10", ".4f"),
    ("train_seconds", "train s", ".1f"),
    ("peak_rss_mib", "peak MiB", ".0f"),
)


@dataclass(frozen=True)
class RunRecord:
    """One run folder: where it is, its resolved config and its results."""

    path: Path
    config: dict[str, Any]
    results: dict[str, Any]

    def value(self, key: str) -> float | None:
        """A numeric result by key (`peak_rss_mib` is derived from `peak_rss_bytes`)."""
        if key == "peak_rss_mib":
            rss = self.results.get("peak_rss_bytes")
            return None if rss is None else float(rss) / 2**20
        v = self.results.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    @property
    def status(self) -> str:
        """The run's status: `complete`, `running`, `interrupted`, `failed`, `diverged`..."""
        return run_status(self.results)


def run_status(results: dict[str, Any] | None) -> str:
    """The status of a run folder from its results.json: the one rule every reader uses
    (`agem compare`, sweeps, `RunFolder.status`, so `--resume`).

    "not started" without results; the recorded "status" when there is one; results
    written before statuses were recorded count as complete once they hold the total
    time (those versions wrote it only when training had finished), else as running.
    """
    if results is None:
        return "not started"
    status = results.get("status")
    if isinstance(status, str):
        return status
    return "complete" if "total_seconds" in results else "running"


def load_run(path: str | Path, *, allow_missing_results: bool = False) -> RunRecord:
    """Read `path/results.json` (and `path/config.json` when present).

    Raises ValueError with a one-line message when the folder or its results are missing
    or unreadable. With `allow_missing_results`, a folder holding only a config.json (a
    run that has not written results yet) gives a record with empty results.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such run folder")
    results_path = folder / "results.json"
    if not results_path.is_file():
        if allow_missing_results and (folder / "config.json").is_file():
            return RunRecord(folder, _read_config(folder), {"status": "not started"})
        raise ValueError(f"{folder}: no results.json here (not a finished `agem run` folder)")
    try:
        results = load_json(results_path, limit=MAX_RESULTS_FILE)
    except (OSError, ValueError) as err:
        raise ValueError(f"{results_path}: unreadable results ({describe(err)})") from None
    if not isinstance(results, dict):
        raise ValueError(f"{results_path}: expected a JSON object")
    config = _read_config(folder)
    for key in ("strategy", "benchmark", "seed"):
        if key not in config and key in results:
            config[key] = results[key]
    return RunRecord(folder, config, results)


def _read_config(folder: Path) -> dict[str, Any]:
    config_path = folder / "config.json"
    if not config_path.is_file():
        return {}
    try:
        loaded = load_json(config_path)
    except (OSError, ValueError) as err:
        raise ValueError(f"{config_path}: unreadable config ({describe(err)})") from None
    return loaded if isinstance(loaded, dict) else {}


def is_sweep_folder(path: Path) -> bool:
    """True for a folder written by `agem sweep` (it holds the sweep's spec)."""
    return (path / SWEEP_MARKER).is_file()


def sweep_run_folders(path: Path) -> list[Path]:
    """The run folders of a sweep folder, by name (those with a config or results)."""
    return sorted(
        p
        for p in path.iterdir()
        if p.is_dir() and ((p / "config.json").is_file() or (p / "results.json").is_file())
    )


def load_runs(paths: Sequence[str | Path]) -> list[RunRecord]:
    """Load run folders and sweep folders' runs; a folder named twice is loaded once."""
    records: list[RunRecord] = []
    seen: set[Path] = set()
    for path in map(Path, paths):
        if path.is_dir() and is_sweep_folder(path):
            folders, allow = sweep_run_folders(path), True
        else:
            folders, allow = [path], False
        for folder in folders:
            key = folder.resolve()
            if key in seen:
                continue
            seen.add(key)
            records.append(load_run(folder, allow_missing_results=allow))
    return records


def split_complete(runs: Sequence[RunRecord]) -> tuple[list[RunRecord], list[RunRecord]]:
    """(complete runs, the others) in the order given."""
    complete = [r for r in runs if r.status == "complete"]
    return complete, [r for r in runs if r.status != "complete"]


def _group_key(config: dict[str, Any]) -> str:
    kept = {k: v for k, v in config.items() if k not in IGNORED_FOR_GROUPING}
    return json.dumps(kept, sort_keys=True, default=str)


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def comparison_rows(runs: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One row per configuration, in first-seen order: `label`, `strategy`, `benchmark`,
    `seeds`, `paths` and `metrics` ({column key: (mean, std or None)})."""
    groups: dict[str, list[RunRecord]] = {}
    seeds_seen: set[tuple[str, str]] = set()
    for run in runs:
        key = _group_key(run.config)
        seed = json.dumps(run.config.get("seed"), default=str)
        if (key, seed) in seeds_seen:  # the same experiment twice: count it once
            continue
        seeds_seen.add((key, seed))
        groups.setdefault(key, []).append(run)
    flats = {key: _flat(group[0].config) for key, group in groups.items()}
    # options that differ between configurations of one strategy go into the label (an
    # option that only differs between strategies, e.g. one only Replay uses, does not)
    names = sorted({n for f in flats.values() for n in f} - set(IGNORED_FOR_GROUPING))

    def varying(strategy: Any) -> list[str]:
        same = [f for f in flats.values() if f.get("strategy") == strategy]
        return [
            n
            for n in names
            if n not in ("strategy", "benchmark")
            and len({json.dumps(f.get(n), default=str) for f in same}) > 1
        ]

    several_benchmarks = len({str(g[0].config.get("benchmark")) for g in groups.values()}) > 1
    rows = []
    for key, group in groups.items():
        first = group[0].config
        extra = ", ".join(f"{n}={flats[key].get(n)}" for n in varying(first.get("strategy")))
        label = str(first.get("strategy", "?")) + (f" ({extra})" if extra else "")
        if several_benchmarks:
            label += f" @ {first.get('benchmark', '?')}"
        metrics = {
            col: mean_std([v for r in group if (v := r.value(col)) is not None])
            for col, _, _ in COLUMNS
        }
        rows.append(
            {
                "label": label,
                "strategy": first.get("strategy", "?"),
                "benchmark": first.get("benchmark", "?"),
                "seeds": [r.config.get("seed") for r in group],
                "paths": [str(r.path) for r in group],
                "metrics": metrics,
            }
        )
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as an aligned text table (mean ± std where several seeds were given)."""
    header, body = _table_cells(rows, pm=" ± ")
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])


def _table_cells(rows: Sequence[dict[str, Any]], *, pm: str) -> tuple[list[str], list[list[str]]]:
    header = ["strategy", "benchmark", "seeds", *[h for _, h, _ in COLUMNS]]
    body = []
    for r in rows:
        cells = [r["label"], str(r["benchmark"]), str(len(r["seeds"]))]
        for key, _, spec in COLUMNS:
            mean, std = r["metrics"][key]
            text = "-" if mean is None else format(mean, spec)
            if mean is not None and std is not None:
                text += f"{pm}{format(std, spec)}"
            cells.append(text)
        body.append(cells)
    return header, body


def format_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    header, body = _table_cells(rows, pm=" ± ")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in body]
    return "\n".join(lines)


def format_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV: a mean and a std column per metric, full precision."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["strategy", "benchmark", "seeds"]
    for key, _, _ in COLUMNS:
        header += [f"{key}_mean", f"{key}_std"]
    writer.writerow(header)
    for r in rows:
        cells = [r["label"], str(r["benchmark"]), str(len(r["seeds"]))]
        for key, _, _ in COLUMNS:
            mean, std = r["metrics"][key]
            cells += ["" if mean is None else repr(mean), "" if std is None else repr(std)]
        writer.writerow(cells)
    return buffer.getvalue().rstrip("\n")


_LATEX_SPECIAL = {c: f"\\{c}" for c in "&%$#_{}"}


def _latex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def format_latex(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a LaTeX `tabular` (booktabs rules), `mean $\\pm$ std` cells."""
    header, body = _table_cells(rows, pm=" $\\pm$ ")
    lines = [
        "\\begin{tabular}{ll" + "r" * (len(header) - 2) + "}",
        "\\toprule",
        " & ".join(_latex(h) for h in header) + " \\\\",
        "\\midrule",
    ]
    for cells in body:
        escaped = [_latex(c) if "$" not in c else c for c in cells]
        lines.append(" & ".join(escaped) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines)


FORMATS = {"text": format_table, "md": format_markdown, "csv": format_csv, "latex": format_latex}
