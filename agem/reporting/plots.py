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


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
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
    ax.set_title(title or "Accuracy matrix R[i][j]")
    return _save(fig, path)


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
    ax.set_title(title or "Accuracy on each experience over training")
    ax.legend(fontsize="small", ncol=max(1, len(series) // 10), loc="best")
    return _save(fig, path)


def plot_lca(
    curves: Sequence[Sequence[float] | None], path: str | Path, *, title: str | None = None
) -> Path:
    """The LCA learning curves a_{k,b,k} (thin, one per experience) and their mean Z_b."""
    import numpy as np

    present = [list(c) for c in curves if c is not None]
    if not present:
        raise ValueError("there are no LCA curves to plot")
    length = min(len(c) for c in present)
    fig = _figure(6.4, 4.4)
    ax = fig.add_subplot()
    for c in present:
        ax.plot(range(length), c[:length], color="0.7", linewidth=0.8)
    z = np.mean([c[:length] for c in present], axis=0)
    beta = length - 1
    ax.plot(range(length), z, color="C3", linewidth=2.0, marker="o", label="Z_b (mean)")
    ax.set_xlabel("minibatches b into the experience")
    ax.set_ylabel("accuracy on the experience's test set")
    ax.set_ylim(0.0, 1.0)
    ax.set_title(title or f"Learning curves (LCA_{beta} = {float(z.mean()):.3f})")
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_comparison(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    metrics: Sequence[str] = ("A_T", "F_T", "LCA_10"),
) -> Path:
    """Grouped bars of `metrics` for each compared configuration, with std error bars.

    `rows` are `agem.reporting.comparison_rows(...)` entries (`label`, and `metrics`
    mapping a name to (mean, std or None), mean None when missing).
    """
    import numpy as np

    if not rows:
        raise ValueError("there is nothing to compare")
    fig = _figure(max(6.0, 1.2 + 1.1 * len(rows) * len(metrics) / 2), 4.6)
    ax = fig.add_subplot()
    width = 0.8 / len(metrics)
    x = np.arange(len(rows))
    for i, name in enumerate(metrics):
        means = [r["metrics"].get(name, (None, None))[0] for r in rows]
        stds = [r["metrics"].get(name, (None, None))[1] for r in rows]
        ax.bar(
            x + (i - (len(metrics) - 1) / 2) * width,
            [np.nan if m is None else m for m in means],
            width,
            yerr=[np.nan if s is None else s for s in stds],
            capsize=3,
            label=name,
        )
    ax.set_xticks(x, [r["label"] for r in rows], rotation=20, ha="right", fontsize="small")
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_ylabel("value")
    ax.set_title("Comparison (mean ± std over seeds)")
    ax.legend()
    return _save(fig, path)


def write_run_plots(results: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Every plot the results allow, as PNGs in `out_dir`: accuracy_matrix.png,
    accuracy_over_time.png, lca.png. Returns the paths written."""
    out = Path(out_dir)
    written = []
    title = " ".join(str(results[k]) for k in ("strategy", "benchmark") if results.get(k))
    if results.get("accuracy_matrix"):
        written.append(
            plot_accuracy_matrix(
                results["accuracy_matrix"],
                out / "accuracy_matrix.png",
                title=f"Accuracy matrix — {title}" if title else None,
            )
        )
    if results.get("evaluations"):
        written.append(
            plot_accuracy_over_time(results["evaluations"], out / "accuracy_over_time.png")
        )
    curves = results.get("lca_curves") or []
    if any(c is not None for c in curves):
        written.append(plot_lca(curves, out / "lca.png"))
    return written
