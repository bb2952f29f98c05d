"""The summary of a sweep: one row per configuration, mean ± std over its seeds.

A configuration is a job's grid values other than the seed. Only complete runs count;
the number of seeds is the number of distinct seeds among them. A metric is averaged
over the runs that recorded it: its own count `n` says how many, and the runs that
lacked it are listed. `summary.csv` has a mean, a std and an n column per metric,
`summary.md` a `mean ± std` cell (with `(n=k)` when k is below the seeds) and the runs
that lacked a value below the table, `summary.png` (and the other formats the sweep's
`plot_format` names) the final accuracy (higher is better) and forgetting (lower is
better) on separate axes, laid out and coloured as `agem compare` draws them. All are
written atomically.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agem.atomic import write_text_atomic
from agem.reporting.compare import RunRecord, mean_std

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# (key in results.json, column name)
METRICS: tuple[tuple[str, str], ...] = (
    ("A_T", "A_T"),
    ("F_T", "F_T"),
    ("BWT", "BWT"),
    ("FWT", "FWT"),
    ("LCA_10", "LCA_10"),
    ("train_seconds", "train_s"),
)
# reported only when some run has it (split benchmarks evaluated class-incrementally)
EXTRA_METRICS: tuple[tuple[str, str], ...] = (("A_T_task_il", "A_T_task_il"),)


@dataclass(frozen=True)
class SummaryRow:
    """One configuration: its grid values, its distinct seeds, (mean, std) per metric,
    the number of values averaged per metric, and per metric the runs that lacked one."""

    configuration: Mapping[str, Any]
    seeds: tuple[Any, ...]
    metrics: Mapping[str, tuple[float | None, float | None]]
    counts: Mapping[str, int] = field(default_factory=dict)
    missing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    strategy: str | None = None
    benchmark: str | None = None

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={value_text(v)}" for k, v in self.configuration.items()) or "all"

    @property
    def method_label(self) -> str:
        """The strategy's name, then the configuration's other grid values."""
        rest = ", ".join(
            f"{k}={value_text(v)}" for k, v in self.configuration.items() if k != "strategy"
        )
        name = self.strategy or str(self.configuration.get("strategy", ""))
        return f"{name} ({rest})" if name and rest else name or rest or "all"


def value_text(value: Any) -> str:
    """A grid value as text: a list comma-separated, a JSON object as key=value pairs."""
    if isinstance(value, Mapping):
        return ",".join(f"{k}={value_text(v)}" for k, v in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return ",".join(map(value_text, value))
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
        values = {key: [(r, r.value(key)) for r in unique] for key, _ in (*METRICS, *EXTRA_METRICS)}
        metrics = {
            key: mean_std([v for _, v in pairs if v is not None]) for key, pairs in values.items()
        }
        counts = {key: sum(v is not None for _, v in pairs) for key, pairs in values.items()}
        missing = {
            key: tuple(r.path.name for r, v in pairs if v is None)
            for key, pairs in values.items()
            if any(v is None for _, v in pairs)
        }
        seeds = tuple(r.config.get("seed") for r in unique)
        strategy, benchmark = (
            next((str(r.config[key]) for r in unique if r.config.get(key) is not None), None)
            for key in ("strategy", "benchmark")
        )
        extra = {key for key, _ in EXTRA_METRICS}
        missing = {k: v for k, v in missing.items() if k not in extra or counts[k]}
        row = SummaryRow(dict(configuration), seeds, metrics, counts, missing, strategy, benchmark)
        rows.append(row)
    return rows


def _metrics(rows: Sequence[SummaryRow]) -> tuple[tuple[str, str], ...]:
    """The metrics reported: `METRICS`, then each of `EXTRA_METRICS` some row has."""
    extra = tuple(
        (key, name) for key, name in EXTRA_METRICS if any(r.counts.get(key) for r in rows)
    )
    return (*METRICS, *extra)


def _columns(rows: Sequence[SummaryRow]) -> list[str]:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row.configuration if k not in keys]
    return keys


def to_csv(rows: Sequence[SummaryRow]) -> str:
    """CSV: the configuration's grid values, `seeds`, then `<metric>_mean,<metric>_std,
    <metric>_n` (n: the values averaged)."""
    keys = _columns(rows)
    metrics = _metrics(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = [*keys, "seeds"]
    for _, name in metrics:
        header += [f"{name}_mean", f"{name}_std", f"{name}_n"]
    writer.writerow(header)
    for row in rows:
        cells = [value_text(row.configuration.get(k, "")) for k in keys] + [str(len(row.seeds))]
        for key, _ in metrics:
            mean, std = row.metrics[key]
            cells += ["" if mean is None else repr(mean), "" if std is None else repr(std)]
            cells.append(str(row.counts.get(key, 0)))
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
    metrics = _metrics(rows)
    header = [*keys, "seeds", *(name for _, name in metrics)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [value_text(row.configuration.get(k, "")) for k in keys] + [str(len(row.seeds))]
        for key, _ in metrics:
            text = cell(*row.metrics[key], digits=1 if key == "train_seconds" else 4)
            n = row.counts.get(key, len(row.seeds))
            cells.append(text + (f" (n={n})" if 0 < n < len(row.seeds) else ""))
        lines.append("| " + " | ".join(cells) + " |")
    notes = missing_lines(rows)
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"


def missing_lines(rows: Sequence[SummaryRow]) -> list[str]:
    """One line per configuration and metric that some complete runs lacked."""
    names = dict((*METRICS, *EXTRA_METRICS))
    return [
        f"{row.label}: {names[key]} missing in {', '.join(runs)} (averaged over "
        f"{row.counts.get(key, 0)} of {len(row.seeds)})"
        for row in rows
        for key, runs in row.missing.items()
    ]


SUMMARY_METRICS = ("A_T", "F_T")


def _bars(rows: Sequence[SummaryRow]) -> list[dict[str, Any]]:
    """The rows as `agem.reporting.plots.plot_comparison` rows, labelled by method."""
    if not rows:
        raise ValueError("no complete runs: nothing to plot")
    return [
        {
            "label": row.method_label,
            "strategy": row.strategy or row.method_label,
            "benchmark": row.benchmark or "?",
            "seeds": list(row.seeds),
            "metrics": dict(row.metrics),
            "counts": dict(row.counts),
        }
        for row in rows
    ]


def summary_figure(rows: Sequence[SummaryRow], *, title: str = "Sweep") -> Figure:
    """The figure of `plot_summary`."""
    from agem.reporting.plots import comparison_figure

    return comparison_figure(_bars(rows), metrics=SUMMARY_METRICS, title=title)


def plot_summary(
    rows: Sequence[SummaryRow], path: Path, *, formats: Sequence[str] = ("png",)
) -> list[Path]:
    """A_T (higher is better) and F_T (lower is better) per configuration: the mean with
    ±1 std error bars and the n averaged, titled with the sweep's folder, benchmark and
    seeds; laid out, and each strategy coloured, as `agem compare` draws them. One file
    per format in `formats`."""
    from agem.reporting.plots import plot_comparison

    title = f"Sweep {path.parent.resolve().name}"
    return plot_comparison(_bars(rows), path, metrics=SUMMARY_METRICS, title=title, formats=formats)


def write_summary(
    rows: Sequence[SummaryRow], folder: Path, *, formats: Sequence[str] = ("png",)
) -> list[Path]:
    """Write summary.csv, summary.md and (when a run completed) the summary figure in
    `folder`, as summary.png and/or .pdf, .svg (`formats`)."""
    written = [folder / "summary.csv", folder / "summary.md"]
    write_text_atomic(written[0], to_csv(rows))
    write_text_atomic(written[1], to_markdown(rows))
    if any(r.metrics["A_T"][0] is not None for r in rows):
        written += plot_summary(rows, folder / "summary.png", formats=formats)
    return written
