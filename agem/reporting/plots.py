"""PNG plots of a run: accuracy-matrix heatmap, accuracy over training time, LCA curves.

Figures are drawn with matplotlib's object API on the Agg canvas, so no GUI backend
is touched and pyplot's global state is left alone; matplotlib is imported lazily.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path, *, title: str) -> Path:
    """Write the PNG atomically; its title also goes into the PNG's "Title" metadata."""
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fig.savefig(tmp, dpi=100, format="png", metadata={"Title": " ".join(title.split())})
    os.replace(tmp, path)
    return path


def plot_accuracy_matrix(
    matrix: Sequence[Sequence[float | None]], path: str | Path, *, title: str | None = None
) -> Path:
    """Heatmap of R (row i: after training experience i), each cell annotated."""
    import numpy as np

    m = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    if m.ndim != 2 or m.size == 0:
        raise ValueError("the accuracy matrix is empty: nothing to plot")
    rows, cols = m.shape
    side = min(2.0 + 0.6 * max(rows, cols), 14.0)
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    image = ax.imshow(m, vmin=0.0, vmax=1.0, cmap="viridis")
    fig.colorbar(image, ax=ax, label="test accuracy")
    size = max(5.0, 11.0 - 0.25 * max(rows, cols))
    for i in range(rows):
        for j in range(cols):
            if not np.isnan(m[i, j]):
                color = "black" if m[i, j] > 0.6 else "white"
                ax.text(
                    j, i, f"{m[i, j]:.2f}", ha="center", va="center", color=color, fontsize=size
                )
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.set_xlabel("evaluated on experience j")
    ax.set_ylabel("after training experience i")
    heading = title or "Accuracy matrix R[i][j]"
    ax.set_title(heading)
    return _save(fig, path, title=heading)


def plot_accuracy_over_time(
    evaluations: Sequence[Mapping[str, Any]], path: str | Path, *, title: str | None = None
) -> Path:
    """Accuracy on each experience (one line each) against training iterations.

    `evaluations` are the evaluator's records (`results["evaluations"]`): each has
    `train_iterations`, `after_experience` and `accuracy` ({experience: accuracy}).
    """
    if not evaluations:
        raise ValueError("there are no evaluations to plot")
    series: dict[int, tuple[list[int], list[float]]] = {}
    for record in evaluations:
        for j, acc in record["accuracy"].items():
            xs, ys = series.setdefault(int(j), ([], []))
            xs.append(int(record["train_iterations"]))
            ys.append(float(acc))
    fig = _figure(8.0, 4.8)
    ax = fig.add_subplot()
    for j in sorted(series):
        xs, ys = series[j]
        ax.plot(xs, ys, marker="o", markersize=3, label=f"exp {j}")
    for record in evaluations:
        if record["after_experience"] >= 0:
            ax.axvline(record["train_iterations"], color="0.85", linewidth=0.8, zorder=0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("training iterations")
    ax.set_ylabel("test accuracy")
    heading = title or "Accuracy on each experience over training"
    ax.set_title(heading)
    ax.legend(fontsize="small", ncol=max(1, len(series) // 10), loc="best")
    return _save(fig, path, title=heading)


def plot_lca(
    curves: Sequence[Sequence[float] | None], path: str | Path, *, title: str | None = None
) -> Path:
    """The LCA learning curves a_{k,b,k} (thin, one per experience, in the legend as
    "exp k") and their mean Z_b (thick); `title` (e.g. the run's) under the heading."""
    fig = lca_figure(curves, title=title)
    return _save(fig, path, title=fig.axes[0].get_title())


def lca_figure(curves: Sequence[Sequence[float] | None], *, title: str | None = None) -> Figure:
    """The figure of `plot_lca`."""
    import numpy as np

    present = [(k, list(c)) for k, c in enumerate(curves) if c is not None]
    if not present:
        raise ValueError("there are no LCA curves to plot")
    length = min(len(c) for _, c in present)
    fig = _figure(7.6, 4.4)
    ax = fig.add_subplot()
    colors = _colors(len(present))
    for (k, c), color in zip(present, colors, strict=True):
        ax.plot(range(length), c[:length], color=color, linewidth=0.9, alpha=0.8, label=f"exp {k}")
    z = np.mean([c[:length] for _, c in present], axis=0)
    beta = length - 1
    ax.plot(range(length), z, color="black", linewidth=2.2, marker="o", label="Z_b (mean)")
    ax.set_xlabel("minibatches b into the experience")
    ax.set_ylabel("accuracy on the experience's test set")
    ax.set_ylim(0.0, 1.0)
    heading = f"Learning curves (LCA_{beta} = {float(z.mean()):.3f})"
    ax.set_title(f"{heading}\n{title}" if title else heading)
    ax.legend(
        loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small", ncol=1 + len(present) // 16
    )
    return fig


def _colors(n: int) -> list[Any]:
    """`n` distinguishable colours (tab10, then tab20, then a continuous map)."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["viridis"](i / (n - 1)) for i in range(n)]


#: Which way is better for each metric, for the axis labels of comparison plots.
HIGHER_IS_BETTER = {"A_T": True, "F_T": False, "BWT": True, "FWT": True}


def _direction(metric: str) -> str:
    higher = HIGHER_IS_BETTER.get(metric, metric.startswith("LCA"))
    return "higher is better" if higher else "lower is better"


def _seeds_text(seeds: Sequence[Any]) -> str:
    values = sorted({str(s) for s in seeds}, key=lambda s: (len(s), s))
    return f"seed {values[0]}" if len(values) == 1 else f"seeds {', '.join(values)}"


def run_title(results: Mapping[str, Any]) -> str:
    """ "<strategy> on <benchmark>, seed <seed>" from a run's results (parts that exist)."""
    parts = [str(results[k]) for k in ("strategy", "benchmark") if results.get(k) is not None]
    text = " on ".join(parts)
    if results.get("seed") is not None:
        text = f"{text}, seed {results['seed']}" if text else f"seed {results['seed']}"
    return text


def comparison_title(rows: Sequence[Mapping[str, Any]]) -> str:
    """The strategies, benchmark(s) and seeds of comparison `rows`, as one line."""
    strategies = list(dict.fromkeys(str(r.get("strategy", "?")) for r in rows))
    benchmarks = list(dict.fromkeys(str(r.get("benchmark", "?")) for r in rows))
    seeds = [s for r in rows for s in r.get("seeds", [])]
    text = f"{', '.join(strategies)} on {', '.join(benchmarks)}"
    return f"{text}, {_seeds_text(seeds)}" if seeds else text


def plot_comparison(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    metrics: Sequence[str] = ("A_T", "F_T", "LCA_10"),
    title: str | None = None,
) -> Path:
    """One panel per metric, one bar per compared configuration, std error bars.

    Each metric has its own axis, labelled with which way is better (A_T: higher, F_T:
    lower, ...). Bars are labelled on the x axis, so no legend covers them. `rows` are
    `agem.reporting.comparison_rows(...)` entries (`label`, `strategy`, `benchmark`,
    `seeds`, and `metrics` mapping a name to (mean, std or None), mean None when
    missing). The title names strategies, benchmarks and seeds unless `title` is given.
    """
    fig = comparison_figure(rows, metrics=metrics, title=title)
    return _save(fig, path, title=title or comparison_title(rows))


def comparison_figure(
    rows: Sequence[Mapping[str, Any]],
    *,
    metrics: Sequence[str] = ("A_T", "F_T", "LCA_10"),
    title: str | None = None,
) -> Figure:
    """The figure of `plot_comparison`."""
    import numpy as np

    if not rows:
        raise ValueError("there is nothing to compare")
    if not metrics:
        raise ValueError("no metrics to plot")
    import textwrap

    # long labels wrap at spaces
    labels = [textwrap.fill(str(r["label"]), 22, break_long_words=False) for r in rows]
    lines = max(label.count("\n") + 1 for label in labels)
    panel = max(2.8, 0.9 + 0.6 * len(rows))
    fig = _figure(panel * len(metrics), 4.4 + 0.35 * lines)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    x = np.arange(len(rows))
    colors = _colors(len(rows))
    for ax, name in zip(axes, metrics, strict=True):
        means = [r["metrics"].get(name, (None, None))[0] for r in rows]
        stds = [r["metrics"].get(name, (None, None))[1] for r in rows]
        ax.bar(
            x,
            [np.nan if m is None else m for m in means],
            0.7,
            yerr=[0.0 if s is None else s for s in stds],
            capsize=4,
            color=colors,
            ecolor="black",
        )
        for xi, m in zip(x, means, strict=True):
            if m is None:
                ax.text(xi, 0.0, "n/a", ha="center", va="bottom", fontsize="small")
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize="small")
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.set_title(name)
        ax.set_ylabel(f"{name} ({_direction(name)})")
    several = any(len(r.get("seeds", [])) > 1 for r in rows)
    note = "mean ± std over seeds" if several else "one seed per configuration"
    fig.suptitle(f"{title or comparison_title(rows)}\n({note})", fontsize="medium")
    return fig


def write_run_plots(results: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Every plot the results allow, as PNGs in `out_dir`: accuracy_matrix.png,
    accuracy_over_time.png, lca.png, each titled with strategy, benchmark and seed.
    Returns the paths written."""
    out = Path(out_dir)
    written = []
    title = run_title(results)
    if results.get("accuracy_matrix"):
        written.append(
            plot_accuracy_matrix(
                results["accuracy_matrix"],
                out / "accuracy_matrix.png",
                title=f"Accuracy matrix R[i][j]\n{title}" if title else None,
            )
        )
    if results.get("evaluations"):
        written.append(
            plot_accuracy_over_time(
                results["evaluations"],
                out / "accuracy_over_time.png",
                title=f"Accuracy on each experience over training\n{title}" if title else None,
            )
        )
    curves = results.get("lca_curves") or []
    if any(c is not None for c in curves):
        written.append(plot_lca(curves, out / "lca.png", title=title or None))
    return written
