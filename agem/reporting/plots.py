"""Plots of a run: accuracy-matrix heatmap, accuracy over training time, LCA curves; and
the bar charts that compare methods (`agem compare`, a sweep's summary).

Figures are drawn with matplotlib's object API on the Agg canvas, so no GUI backend
is touched and pyplot's global state is left alone; matplotlib is imported lazily. Each
figure is written in the formats asked for (PNG at 150 dpi, PDF with embedded TrueType
fonts, SVG), atomically, its title in the file's "Title" metadata. The layouts stay
readable from 2 to 50 experiences: beyond 10 the per-experience lines take their colour
from a colormap with a colour bar instead of a legend, and beyond 12 the matrix cells
lose their annotations and its ticks thin out. In the method comparisons each method
keeps one colour in every figure (`method_colors`).
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agem.atomic import write_atomic
from agem.forked import Standby, run_forked

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: The figure formats that can be written, in the order they are written.
PLOT_FORMATS = ("png", "pdf", "svg")
DEFAULT_PLOT_FORMAT = "png"
PNG_DPI = 150
#: Up to this many experiences a figure names each one in a legend; beyond, a colour bar.
LEGEND_EXPERIENCES = 10
#: Up to this many rows or columns the accuracy matrix shows each cell's value.
ANNOTATED_CELLS = 12
COLORMAP_END = 0.92  # viridis' last, palest yellows are hard to see on white


def plot_formats(text: str) -> tuple[str, ...]:
    """The formats of "png,pdf" (spaces and any case allowed), checked, in the order of
    `PLOT_FORMATS`. ValueError for an unknown format, a repeat or an empty list."""
    if not isinstance(text, str):
        raise ValueError(f"plot formats must be text like 'png,pdf', got {text!r}")
    names = [n.strip().lower() for n in text.split(",")]
    unknown = [n for n in names if n not in PLOT_FORMATS]
    if unknown or len(set(names)) != len(names):
        raise ValueError(
            f"plot formats must be a comma-separated list of {', '.join(PLOT_FORMATS)} "
            f"without repeats, got {text!r}"
        )
    return tuple(n for n in PLOT_FORMATS if n in names)


def _import_matplotlib() -> None:
    """Import what drawing and saving a figure needs (and matplotlib's font list)."""
    import matplotlib.backends.backend_agg
    import matplotlib.figure
    import matplotlib.font_manager  # noqa: F401


def plot_standby() -> Standby:
    """A `Standby` that imports matplotlib now, on another CPU, for `write_run_plots` to
    draw from at the end of a run (nothing to prepare when it is imported already)."""
    return Standby(None if "matplotlib.backends.backend_agg" in sys.modules else _import_matplotlib)


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # at the PNG resolution already, so that saving reuses the text layout of the layout
    # pass (the same bytes, in about 10 % less time)
    fig = Figure(figsize=(width, height), dpi=PNG_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(
    fig: Figure, path: str | Path, *, title: str, formats: Sequence[str] | None = None
) -> list[Path]:
    """Write the figure as `path` with each format's suffix (default: `path`'s own suffix,
    else PNG), atomically; the title also goes into each file's "Title" metadata. PDF and
    SVG carry no creation date, so the same figure gives the same file."""
    from matplotlib import rc_context

    path = Path(path)
    kinds = plot_formats(",".join(formats)) if formats else (path.suffix.lstrip(".") or "png",)
    if kinds[0] not in PLOT_FORMATS:
        raise ValueError(f"{path}: cannot write a .{kinds[0]} figure; use {PLOT_FORMATS}")
    heading = " ".join(title.split())
    written = []
    # TrueType fonts in PDFs (journals refuse Type 3); SVG ids from a fixed salt
    with rc_context({"pdf.fonttype": 42, "svg.hashsalt": "agem"}):
        for kind in kinds:
            metadata: dict[str, Any] = {"Title": heading}
            if kind == "pdf":
                metadata["CreationDate"] = None
            elif kind == "svg":
                metadata["Date"] = None

            def draw(handle: Any, kind: str = kind, metadata: dict[str, Any] = metadata) -> None:
                fig.savefig(handle, dpi=PNG_DPI, format=kind, metadata=metadata)

            written.append(write_atomic(path.with_suffix(f".{kind}"), draw))
    return written


# ---- one run ----------------------------------------------------------------------------
def plot_accuracy_matrix(
    matrix: Sequence[Sequence[float | None]],
    path: str | Path,
    *,
    title: str | None = None,
    formats: Sequence[str] | None = None,
) -> list[Path]:
    """Heatmap of R (row i: after training experience i); each cell annotated up to
    `ANNOTATED_CELLS` experiences. Returns the files written."""
    fig = accuracy_matrix_figure(matrix, title=title)
    return _save(fig, path, title=fig.axes[0].get_title(), formats=formats)


def _tick_step(n: int) -> int:
    """Every tick up to 20 labels, then every 2nd, 5th or 10th."""
    return next((s for s in (1, 2, 5, 10) if n / s <= 20), max(1, n // 10))


def accuracy_matrix_figure(
    matrix: Sequence[Sequence[float | None]], *, title: str | None = None
) -> Figure:
    """The figure of `plot_accuracy_matrix`."""
    import numpy as np

    m = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    if m.ndim != 2 or m.size == 0:
        raise ValueError("the accuracy matrix is empty: nothing to plot")
    rows, cols = m.shape
    n = max(rows, cols)
    side = min(3.0 + 0.5 * n, 9.0)
    fig = _figure(side + 1.4, side + 0.6)
    ax = fig.add_subplot()
    image = ax.imshow(m, vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="test accuracy", shrink=0.85)
    if n <= ANNOTATED_CELLS:
        size = max(6.0, 11.0 - 0.4 * n)
        for i in range(rows):
            for j in range(cols):
                if not np.isnan(m[i, j]):
                    color = "black" if m[i, j] > 0.6 else "white"
                    ax.text(
                        j, i, f"{m[i, j]:.2f}", ha="center", va="center", color=color, fontsize=size
                    )
    step = _tick_step(n)
    ax.set_xticks(range(0, cols, step))
    ax.set_yticks(range(0, rows, step))
    ax.tick_params(labelsize="small" if n > 20 else "medium")
    ax.set_xlabel("evaluated on experience j")
    ax.set_ylabel("after training experience i")
    ax.set_title(title or "Accuracy matrix R[i][j]")
    return fig


def _experience_colors(n: int) -> list[Any]:
    """`n` colours for experiences: tab10 up to `LEGEND_EXPERIENCES`, then a colormap
    (no colour repeats; neighbouring experiences get neighbouring colours)."""
    from matplotlib import colormaps

    if n <= LEGEND_EXPERIENCES:
        return [colormaps["tab10"](i) for i in range(n)]
    return [colormaps["viridis"](COLORMAP_END * i / (n - 1)) for i in range(n)]


def _experience_key(fig: Figure, ax: Axes, ids: Sequence[int]) -> None:
    """The key of a figure with one thin line per experience and a thick mean line: a
    legend outside the axes (right) naming each experience, or, beyond
    `LEGEND_EXPERIENCES`, a colour bar for the experiences under the axes and a legend
    for the black (mean) lines only."""
    import numpy as np
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    legend_args: dict[str, Any] = {
        "loc": "upper left",
        "bbox_to_anchor": (1.01, 1.0),
        "fontsize": "small",
        "frameon": False,
    }
    if len(ids) <= LEGEND_EXPERIENCES:
        ax.legend(**legend_args)
        return
    from matplotlib import colormaps

    cmap = ListedColormap(colormaps["viridis"](np.linspace(0.0, COLORMAP_END, 256)))
    mappable = ScalarMappable(norm=Normalize(min(ids), max(ids)), cmap=cmap)
    bar = fig.colorbar(
        mappable, ax=ax, location="bottom", shrink=0.6, aspect=40, pad=0.02, alpha=0.8
    )
    bar.ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
    bar.set_label("experience (thin lines, one per experience)", fontsize="small")
    thick = [line for line in ax.get_lines() if line.get_color() == "black"]
    thin = Line2D([], [], color="0.5", linewidth=0.9, label="each experience")
    ax.legend(handles=[*thick, thin], **legend_args)


def plot_accuracy_over_time(
    evaluations: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    title: str | None = None,
    experience_ids: Sequence[int] | None = None,
    task_il_matrix: Sequence[Sequence[float | None]] | None = None,
    formats: Sequence[str] | None = None,
) -> list[Path]:
    """The mean accuracy A_t over training (thick) and each experience's accuracy from
    when it is trained on (thin); see `accuracy_over_time_figure`. Returns the files."""
    fig = accuracy_over_time_figure(
        evaluations, title=title, experience_ids=experience_ids, task_il_matrix=task_il_matrix
    )
    return _save(fig, path, title=fig.axes[0].get_title(), formats=formats)


MEAN_LABEL = "A_t: mean over the\nexperiences trained"
TASK_IL_LABEL = "A_t, task-incremental\n(task given at test)"


def accuracy_over_time_figure(
    evaluations: Sequence[Mapping[str, Any]],
    *,
    title: str | None = None,
    experience_ids: Sequence[int] | None = None,
    task_il_matrix: Sequence[Sequence[float | None]] | None = None,
) -> Figure:
    """The main line is A_t, the mean test accuracy on the experiences trained so far,
    after each experience t (A_T at the end); one thin line per experience shows its
    accuracy from its own training on (forgetting shows as a falling line).

    `evaluations` are the evaluator's records (`results["evaluations"]`): each has
    `train_iterations`, `after_experience` (the row t, -1 before training) and `accuracy`
    ({experience: accuracy}). `experience_ids[t]` is the experience trained t-th
    (`results["experience_ids"]`; default: experience t). With `task_il_matrix`
    (`results["accuracy_matrix_task_il"]`) the task-incremental A_t is drawn dashed.
    """
    if not evaluations:
        raise ValueError("there are no evaluations to plot")
    trained = [r for r in evaluations if int(r["after_experience"]) >= 0]
    if not trained:
        raise ValueError("there are no evaluations after training to plot")
    rows = max(int(r["after_experience"]) for r in trained) + 1
    ids = [int(i) for i in experience_ids] if experience_ids is not None else list(range(rows))
    first_row: dict[int, int] = {}
    for row, k in enumerate(ids):
        first_row.setdefault(k, row)
    series: dict[int, tuple[list[int], list[float]]] = {}
    mean_x: list[int] = []
    mean_y: list[float] = []
    task_x: list[int] = []
    task_y: list[float] = []
    for record in trained:
        t = int(record["after_experience"])
        task = (
            list(task_il_matrix[t][: t + 1]) if task_il_matrix and t < len(task_il_matrix) else []
        )
        if task and all(v is not None for v in task):
            task_x.append(int(record["train_iterations"]))
            task_y.append(sum(float(v or 0.0) for v in task) / len(task))
        accuracy = {int(j): float(a) for j, a in record["accuracy"].items()}
        seen = [accuracy[k] for k in dict.fromkeys(ids[: t + 1]) if k in accuracy]
        if seen:
            mean_x.append(int(record["train_iterations"]))
            mean_y.append(sum(seen) / len(seen))
        for j, acc in accuracy.items():
            if first_row.get(j, t + 1) <= t:
                xs, ys = series.setdefault(j, ([], []))
                xs.append(int(record["train_iterations"]))
                ys.append(acc)
    order = sorted(series)
    many = len(order) > LEGEND_EXPERIENCES
    fig = _figure(9.0, 5.4 if many else 4.8)
    ax = fig.add_subplot()
    for record in trained:
        ax.axvline(record["train_iterations"], color="0.9", linewidth=0.7, zorder=0)
    for j, color in zip(order, _experience_colors(len(order)), strict=True):
        xs, ys = series[j]
        ax.plot(
            xs,
            ys,
            color=color,
            linewidth=0.8 if many else 1.1,
            alpha=0.55 if many else 0.75,
            marker=None if many else "o",
            markersize=2.5,
            label=f"exp {j}",
            zorder=2,
        )
    ax.plot(
        mean_x,
        mean_y,
        color="black",
        linewidth=2.4,
        marker="o",
        markersize=3.5 if len(mean_x) <= 20 else 2.0,
        label=MEAN_LABEL,
        zorder=3,
    )
    if task_x:
        ax.plot(task_x, task_y, color="black", linewidth=1.6, linestyle="--", label=TASK_IL_LABEL)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0)
    ax.grid(axis="y", color="0.9", linewidth=0.6)
    ax.set_xlabel("training iterations (grey lines: end of each experience)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title or "Accuracy over training")
    _experience_key(fig, ax, order)
    return fig


def plot_lca(
    curves: Sequence[Sequence[float] | None],
    path: str | Path,
    *,
    title: str | None = None,
    formats: Sequence[str] | None = None,
) -> list[Path]:
    """The LCA learning curves a_{k,b,k} (thin, one per experience) and their mean Z_b
    (thick); `title` (e.g. the run's) under the heading. Returns the files written."""
    fig = lca_figure(curves, title=title)
    return _save(fig, path, title=fig.axes[0].get_title(), formats=formats)


def lca_figure(curves: Sequence[Sequence[float] | None], *, title: str | None = None) -> Figure:
    """The figure of `plot_lca`."""
    import numpy as np

    present = [(k, list(c)) for k, c in enumerate(curves) if c is not None]
    if not present:
        raise ValueError("there are no LCA curves to plot")
    length = min(len(c) for _, c in present)
    many = len(present) > LEGEND_EXPERIENCES
    fig = _figure(8.4, 5.0 if many else 4.4)
    ax = fig.add_subplot()
    colors = _experience_colors(len(present))
    for (k, c), color in zip(present, colors, strict=True):
        ax.plot(
            range(length),
            c[:length],
            color=color,
            linewidth=0.8 if many else 0.9,
            alpha=0.55 if many else 0.8,
            label=f"exp {k}",
        )
    z = np.mean([c[:length] for _, c in present], axis=0)
    beta = length - 1
    ax.plot(range(length), z, color="black", linewidth=2.2, marker="o", label="Z_b (mean)")
    ax.set_xlabel("minibatches b into the experience")
    ax.set_ylabel("accuracy on the experience's test set")
    ax.set_ylim(0.0, 1.0)
    heading = f"Learning curves (LCA_{beta} = {float(z.mean()):.3f})"
    ax.set_title(f"{heading}\n{title}" if title else heading)
    _experience_key(fig, ax, [k for k, _ in present])
    return fig


# ---- comparisons of methods -----------------------------------------------------------
#: Which way is better for each metric, for the axis labels of comparison plots.
HIGHER_IS_BETTER = {"A_T": True, "F_T": False, "BWT": True, "FWT": True, "A_T_task_il": True}
METRIC_NAMES = {
    "A_T": "final average accuracy",
    "F_T": "forgetting",
    "BWT": "backward transfer",
    "FWT": "forward transfer",
    "A_T_task_il": "final accuracy, task-incremental",
}


def _direction(metric: str) -> str:
    higher = HIGHER_IS_BETTER.get(metric, metric.startswith("LCA"))
    return "higher is better" if higher else "lower is better"


def _metric_label(metric: str) -> str:
    name = METRIC_NAMES.get(metric, "learning curve area" if metric.startswith("LCA") else "")
    return (
        f"{metric}: {name}\n({_direction(metric)})" if name else f"{metric} ({_direction(metric)})"
    )


def method_colors(methods: Sequence[str]) -> dict[str, Any]:
    """One colour per method, from the sorted distinct names: every figure of the same
    methods (a sweep's summary.png and `agem compare` of its folder) colours them alike."""
    from matplotlib import colormaps

    names = sorted(set(methods))
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _seeds_text(seeds: Sequence[Any]) -> str:
    values = sorted({str(s) for s in seeds}, key=lambda s: (len(s), s))
    if len(values) > 6:
        return f"{len(values)} seeds ({values[0]}..{values[-1]})"
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
    formats: Sequence[str] | None = None,
) -> list[Path]:
    """One panel per metric, one bar per compared configuration, std error bars.

    Each metric has its own axis, labelled with what it is and which way is better (A_T:
    higher, F_T: lower, ...). Bars are labelled on the x axis with the configuration and
    its number of seeds n, so no legend covers them; each strategy has one colour
    (`method_colors`). `rows` are `agem.reporting.comparison_rows(...)` entries (`label`,
    `strategy`, `benchmark`, `seeds`, `metrics` mapping a name to (mean, std or None),
    mean None when missing, and optionally `counts`: the values averaged per metric).
    The title names strategies, benchmarks and seeds, after `title` when given.
    Returns the files written.
    """
    fig = comparison_figure(rows, metrics=metrics, title=title)
    heading = comparison_title(rows) if title is None else f"{title}: {comparison_title(rows)}"
    return _save(fig, path, title=heading, formats=formats)


def _wrap_label(label: str) -> str:
    """A configuration's label over lines: the method, then one option per line."""
    method, _, options = label.partition(" (")
    parts = [method] + ([f"({options}"] if options else [])
    lines = [line for part in parts for line in part.replace(", ", ",\n").splitlines()]
    return "\n".join(textwrap.fill(line, 22, break_long_words=False) for line in lines)


def comparison_figure(
    rows: Sequence[Mapping[str, Any]],
    *,
    metrics: Sequence[str] = ("A_T", "F_T", "LCA_10"),
    title: str | None = None,
) -> Figure:
    """The figure of `plot_comparison`: panels side by side for up to 8 bars, stacked
    beyond."""
    import numpy as np

    if not rows:
        raise ValueError("there is nothing to compare")
    if not metrics:
        raise ValueError("no metrics to plot")
    n_rows = len(rows)
    labels = [_wrap_label(str(r["label"])) for r in rows]
    lines = max(label.count("\n") + 2 for label in labels)
    longest = max(len(line) for label in labels for line in label.splitlines())
    panel = max(3.0, 1.2 + max(0.7, 0.065 * longest + 0.1) * n_rows)
    stacked = n_rows > 8 or panel * len(metrics) > 20.0
    if stacked:  # one metric per row, the configurations named under the last
        width = min(max(9.0, 2.0 + 0.55 * n_rows), 24.0)
        fig = _figure(width, 2.8 * len(metrics) + 1.2 + 0.1 * longest)
        axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    else:
        fig = _figure(panel * len(metrics), 4.2 + 0.16 * lines)
        axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    x = np.arange(n_rows)
    palette = method_colors([str(r.get("strategy", "?")) for r in rows])
    colors = [palette[str(r.get("strategy", "?"))] for r in rows]
    seeds = [len(r.get("seeds", [])) for r in rows]
    for ax, name in zip(axes, metrics, strict=True):
        means = [r["metrics"].get(name, (None, None))[0] for r in rows]
        stds = [r["metrics"].get(name, (None, None))[1] for r in rows]
        counts = [r.get("counts", {}).get(name, s) for r, s in zip(rows, seeds, strict=True)]
        ax.bar(
            x,
            [np.nan if m is None else m for m in means],
            0.7,
            yerr=[0.0 if s is None else s for s in stds],
            capsize=4 if n_rows <= 20 else 2,
            color=colors,
            edgecolor="black",
            linewidth=0.5,
            ecolor="black",
            error_kw={"elinewidth": 1.0},
        )
        for xi, m, sd in zip(x, means, stds, strict=True):
            if m is None:
                ax.text(xi, 0.0, "n/a", ha="center", va="bottom", fontsize="small")
            elif not stacked:  # the mean above its error bar
                ax.annotate(
                    f"{m:.3f}",
                    (xi, m + (sd or 0.0) if m >= 0 else m - (sd or 0.0)),
                    xytext=(0, 3 if m >= 0 else -3),
                    textcoords="offset points",
                    ha="center",
                    va="bottom" if m >= 0 else "top",
                    fontsize="x-small",
                    color="0.2",
                )
        if stacked:
            ticks = [
                f"{label.replace(chr(10), ' ')} n={c}"
                for label, c in zip(labels, counts, strict=True)
            ]
            shown = ticks if ax is axes[-1] else [f"n={c}" for c in counts]
            ax.set_xticks(
                x,
                shown,
                rotation=35 if ax is axes[-1] else 0,
                ha="right" if ax is axes[-1] else "center",
                fontsize="x-small" if ax is not axes[-1] else "small",
            )
        else:
            ticks = [f"{label}\nn={c}" for label, c in zip(labels, counts, strict=True)]
            ax.set_xticks(x, ticks, fontsize="small")
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.grid(axis="y", color="0.9", linewidth=0.6)
        ax.set_axisbelow(True)
        if name in ("A_T", "A_T_task_il") or name.startswith("LCA"):
            ax.set_ylim(0.0, 1.0)
        ax.set_ylabel(_metric_label(name), fontsize="small")
    several = any(n > 1 for n in seeds)
    note = (
        "bars: mean over seeds; error bars: ±1 standard deviation (sample, n-1); n: seeds averaged"
        if several
        else "one seed per bar (n=1): no error bars"
    )
    heading = comparison_title(rows) if title is None else f"{title}\n{comparison_title(rows)}"
    fig.suptitle(f"{heading}\n{note}", fontsize="medium")
    return fig


def write_run_plots(
    results: Mapping[str, Any],
    out_dir: str | Path,
    *,
    formats: Sequence[str] = ("png",),
    processes: int | None = None,
    standby: Standby | None = None,
) -> list[Path]:
    """Every plot the results allow, in `out_dir`, in each of `formats`:
    accuracy_matrix, accuracy_over_time, lca, each titled with strategy, benchmark and
    seed. Returns the paths written.

    The figures are drawn at once, in up to `processes` processes (default: one per
    figure when more than one CPU is available; see `agem.forked.run_forked`): drawing
    holds the GIL, and drawing the three figures one after another took most of a default
    run's time after training. With a `standby` (`plot_standby()`, started when training
    starts), they are drawn from its child, which imported matplotlib meanwhile."""
    out = Path(out_dir)
    title = run_title(results)
    jobs: list[Callable[[], list[Path]]] = []
    if results.get("accuracy_matrix"):
        jobs.append(
            partial(
                plot_accuracy_matrix,
                results["accuracy_matrix"],
                out / "accuracy_matrix.png",
                title=f"Accuracy matrix R[i][j]\n{title}" if title else None,
                formats=formats,
            )
        )
    if any(int(r["after_experience"]) >= 0 for r in results.get("evaluations") or []):
        jobs.append(
            partial(
                plot_accuracy_over_time,
                results["evaluations"],
                out / "accuracy_over_time.png",
                title=f"Accuracy over training\n{title}" if title else None,
                experience_ids=results.get("experience_ids"),
                task_il_matrix=results.get("accuracy_matrix_task_il"),
                formats=formats,
            )
        )
    curves = results.get("lca_curves") or []
    if any(c is not None for c in curves):
        jobs.append(
            partial(plot_lca, curves, out / "lca.png", title=title or None, formats=formats)
        )
    if standby is not None:
        return [path for written in standby.run(jobs, processes=processes) for path in written]
    if len(jobs) > 1:
        _import_matplotlib()  # once, here: the forked processes share it
    return [path for written in run_forked(jobs, processes=processes) for path in written]
