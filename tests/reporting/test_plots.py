"""Plots: titles name strategy, benchmark and seed(s); the LCA lines have a legend; the
comparison gives each metric its own axis with its direction and error bars."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from agem.reporting.plots import (
    comparison_figure,
    comparison_title,
    lca_figure,
    plot_comparison,
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
    assert a_t.get_ylabel() == "A_T (higher is better)"
    assert f_t.get_ylabel() == "F_T (lower is better)"
    assert a_t.get_legend() is None  # bars are named on the x axis: nothing covers them
    assert [t.get_text() for t in a_t.get_xticklabels()] == ["agem", "naive"]
    caps = [c for c in a_t.containers if hasattr(c, "has_yerr") and c.has_yerr]
    assert caps, "error bars missing"
    suptitle = fig.get_suptitle() if hasattr(fig, "get_suptitle") else fig._suptitle.get_text()
    assert "agem, naive on permuted_digits, seeds 0, 1" in suptitle
    assert "mean ± std" in suptitle
    path = plot_comparison(ROWS, tmp_path / "comparison.png")
    with Image.open(path) as image:
        assert image.text["Title"] == comparison_title(ROWS)


def test_comparison_rejects_nothing_to_plot(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to compare"):
        plot_comparison([], tmp_path / "c.png")
