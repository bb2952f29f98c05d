"""Compare run folders: load their results, group seeds of one configuration, tabulate.

Runs whose `config.json` agree on everything except the seed and where they were
written (`seed`, `out`, `data_dir`, `download`, `threads`) form one group; each metric
is reported as mean ± standard deviation (sample std, n - 1) over the group's seeds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IGNORED_FOR_GROUPING = ("seed", "out", "data_dir", "download", "threads")

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


def load_run(path: str | Path) -> RunRecord:
    """Read `path/results.json` (and `path/config.json` when present).

    Raises ValueError with a one-line message when the folder or its results are missing
    or unreadable.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such run folder")
    results_path = folder / "results.json"
    if not results_path.is_file():
        raise ValueError(f"{folder}: no results.json here (not a finished `agem run` folder)")
    try:
        results = json.loads(results_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{results_path}: unreadable results ({err})") from None
    if not isinstance(results, dict):
        raise ValueError(f"{results_path}: expected a JSON object")
    config: dict[str, Any] = {}
    config_path = folder / "config.json"
    if config_path.is_file():
        try:
            loaded = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{config_path}: unreadable config ({err})") from None
        if isinstance(loaded, dict):
            config = loaded
    for key in ("strategy", "benchmark", "seed"):
        if key not in config and key in results:
            config[key] = results[key]
    return RunRecord(folder, config, results)


def _group_key(config: dict[str, Any]) -> str:
    kept = {k: v for k, v in config.items() if k not in IGNORED_FOR_GROUPING}
    return json.dumps(kept, sort_keys=True, default=str)


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
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
    for run in runs:
        groups.setdefault(_group_key(run.config), []).append(run)
    flats = {key: _flat(group[0].config) for key, group in groups.items()}
    # options that differ between configurations go into the label
    names = sorted({n for f in flats.values() for n in f} - set(IGNORED_FOR_GROUPING))
    varying = [
        n
        for n in names
        if n not in ("strategy", "benchmark")
        and len({json.dumps(f.get(n), default=str) for f in flats.values()}) > 1
    ]
    several_benchmarks = len({str(g[0].config.get("benchmark")) for g in groups.values()}) > 1
    rows = []
    for key, group in groups.items():
        first = group[0].config
        extra = ", ".join(f"{n}={flats[key].get(n)}" for n in varying)
        label = str(first.get("strategy", "?")) + (f" ({extra})" if extra else "")
        if several_benchmarks:
            label += f" @ {first.get('benchmark', '?')}"
        metrics = {
            col: _mean_std([v for r in group if (v := r.value(col)) is not None])
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


def _cell(mean: float | None, std: float | None, *, spec: str) -> str:
    if mean is None:
        return "-"
    return format(mean, spec) + (f" ± {format(std, spec)}" if std is not None else "")


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as an aligned text table (mean ± std where several seeds were given)."""
    header = ["strategy", "benchmark", "seeds", *[h for _, h, _ in COLUMNS]]
    body = []
    for r in rows:
        cells = [r["label"], str(r["benchmark"]), str(len(r["seeds"]))]
        cells += [_cell(*r["metrics"][key], spec=spec) for key, _, spec in COLUMNS]
        body.append(cells)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])
