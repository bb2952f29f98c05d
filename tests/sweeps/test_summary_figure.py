"""summary.png: method names on the x axis, the benchmark and seeds in the title, labelled
axes, error bars said to be std with their n, and the colours `agem compare` gives the
same runs; other formats on request."""

from __future__ import annotations

from pathlib import Path

from agem.reporting.compare import RunRecord, comparison_rows
from agem.reporting.plots import comparison_figure
from agem.sweeps.runner import summary_formats
from agem.sweeps.spec import parse_spec
from agem.sweeps.summary import summarize, summary_figure, write_summary


def _runs(strategy: str, a_t: list[float], **options: float) -> list[RunRecord]:
    config = {"strategy": strategy, "benchmark": "split_digits", **options}
    return [
        RunRecord(
            Path(f"{strategy}-{seed}"),
            {**config, "seed": seed},
            {"status": "complete", "A_T": a, "F_T": 1 - a},
        )
        for seed, a in enumerate(a_t)
    ]


GROUPS = [
    ({"strategy": "naive"}, _runs("naive", [0.2, 0.3, 0.25])),
    ({"strategy": "agem", "lr": 0.1}, _runs("agem", [0.6, 0.7, 0.65], lr=0.1)),
    ({"strategy": "agem", "lr": 0.3}, _runs("agem", [0.5, 0.55], lr=0.3)),
]


def _colors(ax) -> dict[str, tuple[float, ...]]:
    labels = [" ".join(t.get_text().split("\n")[:-1]) for t in ax.get_xticklabels()]
    return {label: tuple(p.get_facecolor()) for label, p in zip(labels, ax.patches, strict=True)}


def test_summary_figure_names_methods_benchmark_seeds_and_what_the_bars_are() -> None:
    fig = summary_figure(summarize(GROUPS), title="Sweep demo")
    a_t, f_t = fig.axes
    ticks = [t.get_text() for t in a_t.get_xticklabels()]
    assert ticks == ["naive\nn=3", "agem\n(lr=0.1)\nn=3", "agem\n(lr=0.3)\nn=2"]
    assert not any("strategy=" in t for t in ticks)
    assert "A_T" in a_t.get_ylabel() and "higher is better" in a_t.get_ylabel()
    assert "F_T" in f_t.get_ylabel() and "lower is better" in f_t.get_ylabel()
    title = fig.get_suptitle() if hasattr(fig, "get_suptitle") else fig._suptitle.get_text()
    assert "Sweep demo" in title and "split_digits" in title and "seeds 0, 1, 2" in title
    assert "±1 standard deviation" in title and "n: seeds averaged" in title


def test_summary_and_comparison_colour_each_method_alike() -> None:
    summary = _colors(summary_figure(summarize(GROUPS)).axes[0])
    runs = [run for _, group in GROUPS for run in group]
    compared = _colors(comparison_figure(comparison_rows(runs), metrics=("A_T",)).axes[0])
    assert summary["naive"] == compared["naive"]
    assert summary["agem (lr=0.1)"] == compared["agem (lr=0.1)"] == compared["agem (lr=0.3)"]
    assert summary["naive"] != summary["agem (lr=0.1)"]


def test_summary_figure_in_the_formats_of_the_sweep(tmp_path: Path) -> None:
    spec = parse_spec('[base]\nplot_format = "svg,pdf"\n[grid]\nseed = [0]\n')
    assert summary_formats(spec) == ("pdf", "svg")
    assert summary_formats(parse_spec("[grid]\nseed = [0]\n")) == ("png",)
    written = write_summary(summarize(GROUPS), tmp_path, formats=summary_formats(spec))
    names = sorted(p.name for p in written)
    assert names == ["summary.csv", "summary.md", "summary.pdf", "summary.svg"]
    assert (tmp_path / "summary.pdf").read_bytes().startswith(b"%PDF-")
