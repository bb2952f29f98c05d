"""Plots: titles name strategy, benchmark and seed(s); the LCA lines have a legend; the
comparison gives each metric its own axis with its direction and error bars; PNG, PDF and
SVG files that open; layouts that stay readable from 2 to 50 experiences."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from agem.reporting.plots import (
    MEAN_LABEL,
    accuracy_matrix_figure,
    accuracy_over_time_figure,
    comparison_figure,
    comparison_title,
    lca_figure,
    plot_comparison,
    plot_formats,
    run_title,
    write_run_plots,
)

RESULTS = {
    "strategy": "agem",
    "benchmark": "permuted_digits",
    "seed": 3,
    "accuracy_matrix": [[0.9, None], [0.8, 0.85]],
    "evaluations": [
        {"train_iterations": 0, "after_experience": -1, "accuracy": {0: 0.1, 1: 0.1}},
        {"train_iterations": 10, "after_experience": 0, "accuracy": {0: 0.9, 1: 0.2}},
        {"train_iterations": 20, "after_experience": 1, "accuracy": {0: 0.8, 1: 0.85}},
    ],
    "lca_curves": [[0.1, 0.5, 0.9], [0.2, 0.6, 0.85]],
}

ROWS = [
    {
        "label": "agem",
        "strategy": "agem",
        "benchmark": "permuted_digits",
        "seeds": [0, 1],
        "metrics": {"A_T": (0.8, 0.02), "F_T": (0.05, 0.01), "LCA_10": (0.5, None)},
    },
    {
        "label": "naive",
        "strategy": "naive",
        "benchmark": "permuted_digits",
        "seeds": [0, 1],
        "metrics": {"A_T": (0.6, 0.03), "F_T": (0.3, 0.02), "LCA_10": (None, None)},
    },
]


def test_every_run_plot_is_titled_with_strategy_benchmark_and_seed(tmp_path: Path) -> None:
    paths = write_run_plots(RESULTS, tmp_path)
    assert {p.name for p in paths} == {"accuracy_matrix.png", "accuracy_over_time.png", "lca.png"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    for path in paths:
        with Image.open(path) as image:
            assert "agem on permuted_digits, seed 3" in image.text["Title"]
    assert run_title(RESULTS) == "agem on permuted_digits, seed 3"


def test_lca_lines_have_a_legend_entry_each() -> None:
    fig = lca_figure(RESULTS["lca_curves"], title=run_title(RESULTS))
    (ax,) = fig.axes
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["exp 0", "exp 1", "Z_b (mean)"]
    assert "agem on permuted_digits, seed 3" in ax.get_title()


def test_comparison_has_one_axis_per_metric_with_direction_and_error_bars(tmp_path: Path) -> None:
    fig = comparison_figure(ROWS, metrics=("A_T", "F_T"))
    a_t, f_t = fig.axes
    assert a_t.get_ylabel() == "A_T: final average accuracy\n(higher is better)"
    assert f_t.get_ylabel() == "F_T: forgetting\n(lower is better)"
    assert a_t.get_legend() is None  # bars are named on the x axis: nothing covers them
    assert [t.get_text() for t in a_t.get_xticklabels()] == ["agem\nn=2", "naive\nn=2"]
    caps = [c for c in a_t.containers if hasattr(c, "has_yerr") and c.has_yerr]
    assert caps, "error bars missing"
    suptitle = _suptitle(fig)
    assert "agem, naive on permuted_digits, seeds 0, 1" in suptitle
    assert "error bars: ±1 standard deviation" in suptitle and "n: seeds averaged" in suptitle
    (path,) = plot_comparison(ROWS, tmp_path / "comparison.png")
    with Image.open(path) as image:
        assert image.text["Title"] == comparison_title(ROWS)


def _suptitle(fig) -> str:
    return fig.get_suptitle() if hasattr(fig, "get_suptitle") else fig._suptitle.get_text()


def _bar_colors(ax) -> dict[str, tuple[float, ...]]:
    """{the x label without its n: the bar's face colour}."""
    labels = [" ".join(t.get_text().split("\n")[:-1]) for t in ax.get_xticklabels()]
    return {lab: tuple(p.get_facecolor()) for lab, p in zip(labels, ax.patches, strict=True)}


def test_comparison_colours_each_method_alike_whatever_its_place() -> None:
    """Configurations of one method share its colour, and another comparison of the same
    methods in another order gives each method the same colour."""
    rows = [*ROWS, {**ROWS[0], "label": "agem (lr=0.3)"}]
    colors = _bar_colors(comparison_figure(rows, metrics=("A_T",)).axes[0])
    assert colors["agem"] == colors["agem (lr=0.3)"] and colors["agem"] != colors["naive"]
    reversed_colors = _bar_colors(comparison_figure(rows[::-1], metrics=("A_T",)).axes[0])
    assert reversed_colors == colors


def test_one_seed_per_bar_says_there_are_no_error_bars() -> None:
    rows = [{**r, "seeds": [0]} for r in ROWS]
    assert "one seed per bar (n=1): no error bars" in _suptitle(comparison_figure(rows))


def test_comparison_rejects_nothing_to_plot(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to compare"):
        plot_comparison([], tmp_path / "c.png")


def test_plot_formats_are_checked_and_ordered() -> None:
    assert plot_formats("svg, PDF") == ("pdf", "svg")
    assert plot_formats("png") == ("png",)
    for bad in ("jpg", "png,png", "", "png,"):
        with pytest.raises(ValueError, match="png, pdf, svg"):
            plot_formats(bad)


@pytest.mark.slow
def test_pdf_and_svg_files_exist_and_open(tmp_path: Path) -> None:
    """Every run plot in PDF (one page, TrueType fonts, titled) and SVG (XML) as well."""
    paths = write_run_plots(RESULTS, tmp_path, formats=("pdf", "svg"))
    names = {"accuracy_matrix", "accuracy_over_time", "lca"}
    assert {p.name for p in paths} == {f"{n}.{s}" for n in names for s in ("pdf", "svg")}
    for path in paths:
        data = path.read_bytes()
        if path.suffix == ".pdf":
            assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
            pages = re.findall(rb"/Type /Pages .*?/Count (\d+)", data, flags=re.S)
            assert pages == [b"1"], path
            assert b"/FontFile2" in data and b"/Subtype /Type3" not in data, path
            assert b"agem on permuted_digits, seed 3" in data  # the title metadata
        else:
            root = ET.fromstring(data)
            assert root.tag == "{http://www.w3.org/2000/svg}svg"
            assert float(root.get("width", "0pt").removesuffix("pt")) > 100
    again = write_run_plots(RESULTS, tmp_path / "again", formats=("pdf", "svg"))
    for first, second in zip(paths, again, strict=True):  # no dates: the same bytes
        assert first.read_bytes() == second.read_bytes(), first.name


def _results(n: int) -> dict:
    """A run of `n` experiences where experience j is forgotten a little after each."""
    matrix = [
        [max(0.0, 0.95 - 0.05 * (i - j)) if j <= i else 0.1 for j in range(n)] for i in range(n)
    ]
    evaluations = [
        {
            "train_iterations": 0,
            "after_experience": -1,
            "accuracy": dict.fromkeys(map(str, range(n)), 0.1),
        }
    ]
    evaluations += [
        {
            "train_iterations": 10 * (i + 1),
            "after_experience": i,
            "accuracy": {str(j): v for j, v in enumerate(row)},
        }
        for i, row in enumerate(matrix)
    ]
    return {"accuracy_matrix": matrix, "evaluations": evaluations, "experience_ids": list(range(n))}


def test_accuracy_over_time_draws_the_mean_accuracy_as_its_main_line() -> None:
    fig = accuracy_over_time_figure(RESULTS["evaluations"])
    (ax,) = fig.axes
    (mean,) = [line for line in ax.get_lines() if line.get_label() == MEAN_LABEL]
    assert list(mean.get_xdata()) == [10, 20]
    assert list(mean.get_ydata()) == pytest.approx([0.9, (0.8 + 0.85) / 2])  # A_t, t = 0, 1
    assert mean.get_linewidth() > 2 * max(
        line.get_linewidth() for line in ax.get_lines() if line is not mean
    )
    exp1 = next(line for line in ax.get_lines() if line.get_label() == "exp 1")
    assert list(exp1.get_xdata()) == [20]  # from its own training on
    legend = ax.get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 >= ax.bbox.x1  # outside


@pytest.mark.parametrize("n", [5, 20, 50])
def test_run_plots_stay_readable_from_5_to_50_experiences(n: int) -> None:
    results = _results(n)
    fig = accuracy_over_time_figure(
        results["evaluations"], experience_ids=results["experience_ids"]
    )
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if line.get_label().startswith("exp ")]
    colors = {tuple(line.get_color()) for line in lines}
    assert len(lines) == n and len(colors) == n  # no colour repeats
    legend_texts = [t.get_text() for t in ax.get_legend().get_texts()]
    if n <= 10:
        assert len(legend_texts) == n + 1
    else:  # a colour bar names the experiences; the legend only the mean line
        assert len(fig.axes) == 2 and len(legend_texts) == 2
    matrix = accuracy_matrix_figure(results["accuracy_matrix"]).axes[0]
    assert len(matrix.texts) == (n * n if n <= 12 else 0)  # values only when they fit
    assert 5 <= len(matrix.get_xticks()) <= 20 and len(matrix.get_yticks()) <= 20
    lca = lca_figure([[0.1, 0.5, 0.9]] * n)
    assert len(lca.get_axes()) == (1 if n <= 10 else 2)


def test_task_incremental_mean_is_drawn_dashed_when_recorded() -> None:
    results = _results(3)
    task = [[1.0 if j <= i else None for j in range(3)] for i in range(3)]
    ax = accuracy_over_time_figure(results["evaluations"], task_il_matrix=task).axes[0]
    (dashed,) = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert list(dashed.get_ydata()) == [1.0, 1.0, 1.0]
    assert not math.isnan(sum(dashed.get_xdata()))
