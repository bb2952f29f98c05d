"""`agem run --out DIR` on the embedded data writes every file of the run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agem.cli.main import main

ARGS = ["--n-experiences", "3", "--hidden-sizes", "32", "--threads", "1", "--log-every", "5"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "naive"
    assert main(["run", "--strategy", "naive", "--out", str(out), *ARGS]) == 0
    return out


def test_run_folder_has_every_file(run_dir: Path) -> None:
    names = {p.name for p in run_dir.iterdir()}
    assert {
        "config.json",
        "results.json",
        "metrics.csv",
        "accuracy_matrix.png",
        "accuracy_over_time.png",
        "lca.png",
    } <= names
    assert any(n.startswith("events.out.tfevents") for n in names)


def test_config_has_every_resolved_option(run_dir: Path) -> None:
    config = json.loads((run_dir / "config.json").read_text())
    assert config["benchmark"] == "permuted_digits" and config["n_experiences"] == 3
    assert config["strategy"] == "naive" and config["hidden_sizes"] == [32]
    assert config["lca_beta"] == 10 and config["lca_test_size"] == 500
    assert config["log_every"] == 5 and "out" not in config


def test_results_hold_the_matrix_and_every_metric(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    R = results["accuracy_matrix"]
    assert len(R) == 3 and all(len(row) == 3 for row in R)
    assert results["A_T"] == pytest.approx(sum(R[-1]) / 3)
    for key in ("A_T", "F_T", "BWT", "FWT", "LCA_10", "train_seconds", "total_seconds"):
        assert isinstance(results[key], float), key
    assert results["peak_rss_bytes"] > 0
    assert len(results["initial_accuracies"]) == 3
    assert len(results["lca_curves"]) == 3 and all(len(c) == 11 for c in results["lca_curves"])
    assert results["strategy"] == "naive" and results["benchmark"] == "permuted_digits"
    assert results["seed"] == 0 and results["n_experiences"] == 3


def test_plots_are_images(run_dir: Path) -> None:
    from matplotlib.image import imread

    for name in ("accuracy_matrix.png", "accuracy_over_time.png", "lca.png"):
        image = imread(run_dir / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100, name


def test_tensorboard_events_hold_the_scalars(run_dir: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "eval/accuracy/exp2", "metrics/A_T", "metrics/LCA_10"} <= tags
    results = json.loads((run_dir / "results.json").read_text())
    assert acc.Scalars("metrics/A_T")[-1].value == pytest.approx(results["A_T"], abs=1e-6)


def test_metrics_csv(run_dir: Path) -> None:
    import csv

    with (run_dir / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    names = {r["name"] for r in rows}
    assert {"train/loss", "train/epoch_loss", "eval/accuracy/exp0", "metrics/A_T"} <= names
    losses = [int(r["iteration"]) for r in rows if r["name"] == "train/loss"]
    assert losses[:2] == [5, 10]  # --log-every 5


def test_printed_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    args = ["run", "--out", str(out), "--no-lca", "--n-experiences", "2", "--hidden-sizes", "8"]
    assert main([*args, "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "A_T=" in text and "LCA" not in text and f"run folder: {out}" in text
    results = json.loads((out / "results.json").read_text())
    assert results["LCA"] is None and results["lca_curves"] == [None, None]
    assert not (out / "lca.png").exists()


@pytest.mark.parametrize(
    "bad",
    [["--lca-beta", "-1"], ["--lca-test-size", "x"], ["--log-every", "0"]],
)
def test_bad_options_exit_2(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", *bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]


def test_split_run_in_pdf_and_svg_reports_task_and_class_incremental_accuracy(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A split benchmark evaluated with one head over all classes: results.json,
    metrics.csv and the printed line carry A_T_task_il beside A_T; the figures are written
    as PDF and SVG only (and a permuted run, every class in every experience, has no
    task-incremental accuracy)."""
    import xml.etree.ElementTree as ET

    out = tmp_path / "split"
    args = ["run", "--benchmark", "split_digits", "--strategy", "naive", "--out", str(out)]
    assert main([*args, *ARGS, "--n-experiences", "5", "--plot-format", "svg,pdf"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert 0.0 <= results["A_T"] < results["A_T_task_il"] <= 1.0
    assert len(results["accuracy_matrix_task_il"]) == 5
    assert f"A_T_task_il={results['A_T_task_il']:.4f}" in printed
    assert "metrics/A_T_task_il" in (out / "metrics.csv").read_text()
    config = json.loads((out / "config.json").read_text())
    assert config["plot_format"] == "pdf,svg"
    figures = sorted(p.name for p in out.iterdir() if p.suffix in (".png", ".pdf", ".svg"))
    names = ("accuracy_matrix", "accuracy_over_time", "lca")
    assert figures == sorted(f"{n}.{s}" for n in names for s in ("pdf", "svg"))
    for name in names:
        assert (out / f"{name}.pdf").read_bytes().startswith(b"%PDF-")
        assert ET.parse(out / f"{name}.svg").getroot().tag.endswith("svg")
    permuted = json.loads((run_dir / "results.json").read_text())
    assert "A_T_task_il" not in permuted and "accuracy_matrix_task_il" not in permuted
