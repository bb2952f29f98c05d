"""The summary of a sweep: one row per configuration, mean ± std over its seeds.

A configuration is a job's grid values other than the seed. Only complete runs count;
the number of seeds is the number of distinct seeds among them. `summary.csv` has a
mean and a std column per metric, `summary.md` a `mean ± std` cell, `summary.png` the
final accuracy (higher is better) and forgetting (lower is better) on separate axes.
All three are written atomically.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agem.reporting.compare import RunRecord, mean_std
from agem.sweeps.atomic import write_bytes_atomic, write_text_atomic

# (key in results.json, column name)
METRICS: tuple[tuple[str, str], ...] = (
    ("A_T", "A_T"),
    ("F_T", "F_T"),
    ("BWT", "BWT"),
    ("FWT", "FWT"),
    ("LCA_10", "LCA_10"),
    ("train_seconds", "train_s"),
)


@dataclass(frozen=True)
class SummaryRow:
    """One configuration: its grid values, its distinct seeds and (mean, std) per metric."""

    configuration: Mapping[str, Any]
    seeds: tuple[Any, ...]
    metrics: Mapping[str, tuple[float | None, float | None]]

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={_text(v)}" for k, v in self.configuration.items()) or "all"


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def summarize(
    groups: Sequence[tuple[Mapping[str, Any], Sequence[RunRecord]]],
) -> list[SummaryRow]:
    """Rows from (configuration, its complete runs) pairs, in the order given.

    A seed that appears twice in a group (the same run listed twice) counts once.
    """
    rows = []
    for configuration, runs in groups:
        by_seed: dict[str, RunRecord] = {}
        for run in runs:
            by_seed.setdefault(repr(run.config.get("seed")), run)
        unique = list(by_seed.values())
        metrics = {
            key: mean_std([v for r in unique if (v := r.value(key)) is not None])
            for key, _ in METRICS
        }
        seeds = tuple(r.config.get("seed") for r in unique)
        rows.append(SummaryRow(dict(configuration), seeds, metrics))
    return rows


def _columns(rows: Sequence[SummaryRow]) -> list[str]:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row.configuration if k not in keys]
    return keys


def to_csv(rows: Sequence[SummaryRow]) -> str:
    """CSV: the configuration's grid values, `seeds`, then `<metric>_mean,<metric>_std`."""
    keys = _columns(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = [*keys, "seeds"]
    for _, name in METRICS:
        header += [f"{name}_mean", f"{name}_std"]
    writer.writerow(header)
    for row in rows:
        cells = [_text(row.configuration.get(k, "")) for k in keys] + [str(len(row.seeds))]
        for key, _ in METRICS:
            mean, std = row.metrics[key]
            cells += ["" if mean is None else repr(mean), "" if std is None else repr(std)]
        writer.writerow(cells)
    return buffer.getvalue()


def cell(mean: float | None, std: float | None, *, digits: int = 4) -> str:
    """`mean ± std`, `mean` alone for one seed, `-` when missing."""
    if mean is None:
        return "-"
    text = f"{mean:.{digits}f}"
    return text + (f" ± {std:.{digits}f}" if std is not None else "")


def to_markdown(rows: Sequence[SummaryRow]) -> str:
    """A Markdown table: grid values, seeds, and `mean ± std` per metric."""
    keys = _columns(rows)
    header = [*keys, "seeds", *(name for _, name in METRICS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [_text(row.configuration.get(k, "")) for k in keys] + [str(len(row.seeds))]
        for key, _ in METRICS:
            cells.append(cell(*row.metrics[key], digits=1 if key == "train_seconds" else 4))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_summary(rows: Sequence[SummaryRow], path: Path) -> Path:
    """A_T (higher is better) and F_T (lower is better) per configuration, with std bars."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not rows:
        raise ValueError("no complete runs: nothing to plot")
    fig = Figure(figsize=(max(6.0, 2.0 + 0.8 * len(rows)), 6.4), layout="constrained")
    FigureCanvasAgg(fig)
    x = np.arange(len(rows))
    panels = (
        ("A_T", "A_T: final average accuracy (higher is better)"),
        ("F_T", "F_T: forgetting (lower is better)"),
    )
    axes = fig.subplots(2, 1, sharex=True)
    for ax, (key, title) in zip(axes, panels, strict=True):
        means = [r.metrics[key][0] for r in rows]
        stds = [r.metrics[key][1] for r in rows]
        ax.bar(
            x,
            [math.nan if m is None else m for m in means],
            yerr=[0.0 if s is None else s for s in stds],
            capsize=4,
            color="tab:blue" if key == "A_T" else "tab:orange",
        )
        ax.set_title(title, fontsize="medium")
        ax.axhline(0.0, color="black", linewidth=0.6)
    axes[-1].set_xticks(x, [r.label for r in rows], rotation=25, ha="right", fontsize="small")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def write_summary(rows: Sequence[SummaryRow], folder: Path) -> list[Path]:
    """Write summary.csv, summary.md and (when a run completed) summary.png in `folder`."""
    written = [folder / "summary.csv", folder / "summary.md"]
    write_text_atomic(written[0], to_csv(rows))
    write_text_atomic(written[1], to_markdown(rows))
    if any(r.metrics["A_T"][0] is not None for r in rows):
        written.append(plot_summary(rows, folder / "summary.png"))
    return written
