"""Loggers: loss buffering, console (bars and plain lines), CSV, JSON and TensorBoard."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch

import agem
from agem.benchmarks import from_tensors
from agem.plugins import (
    ConsoleLogger,
    CSVLogger,
    EvaluationPlugin,
    JSONResultsWriter,
    TensorBoardLogger,
)
from agem.plugins.loggers import LossBuffer


def _bm(n_exp: int = 2, n_train: int = 40) -> Any:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(n_exp, 6, 3, generator=g)

    def part(k: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, 6, generator=g)
        return x, (x @ w[k]).argmax(dim=1)

    return from_tensors(
        train=[part(k, n_train) for k in range(n_exp)], test=[part(k, 30) for k in range(n_exp)]
    )


def _run(plugins: list[Any], *, evaluator: Any = "stream", epochs: int = 1) -> Any:
    bm = _bm()
    if evaluator == "stream":
        evaluator = EvaluationPlugin(
            eval_stream=bm.test_stream, eval_every="experience", lca_beta=2, lca_test_size=10
        )
    torch.manual_seed(0)
    model = agem.models.MLP(input_size=6, hidden_sizes=(8,), num_classes=3)
    s = agem.Naive(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=10,
        train_epochs=epochs,
        eval_mb_size=16,
        seed=0,
        plugins=plugins,
        evaluator=evaluator,
    )
    s.train(bm.train_stream)
    return s


# ---- LossBuffer ----------------------------------------------------------------------


def test_loss_buffer_every_iteration_and_windows() -> None:
    buf = LossBuffer(every=1, flush_every=3)
    out = []
    for i in range(1, 8):
        out += buf.append(torch.tensor(float(i)), iteration=i, experience=0, epoch=0)
    assert [p.loss for p in out] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # two flushes of 3
    assert [p.iteration for p in buf.flush()] == [7]

    buf = LossBuffer(every=3, flush_every=4)  # flushes every 6 (a multiple of 3)
    assert buf.flush_size == 6
    out = []
    for i in range(1, 9):
        out += buf.append(torch.tensor(float(i)), iteration=i, experience=1, epoch=2)
    assert [(p.iteration, p.loss, p.iterations) for p in out] == [(3, 2.0, 3), (6, 5.0, 3)]
    rest = buf.flush()
    assert [(p.iteration, p.loss, p.iterations) for p in rest] == [(8, 7.5, 2)]
    assert rest[0].experience == 1 and rest[0].epoch == 2
    with pytest.raises(ValueError, match="every"):
        LossBuffer(every=0)


# ---- CSV -----------------------------------------------------------------------------


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_csv_logger_every_iteration(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    s = _run([CSVLogger(path, every=1, flush_every=3)])
    rows = _rows(path)
    assert list(rows[0]) == ["iteration", "experience", "epoch", "name", "value"]
    losses = [r for r in rows if r["name"] == "train/loss"]
    assert [int(r["iteration"]) for r in losses] == list(range(1, 9))  # 2 x 4 minibatches
    assert [int(r["experience"]) for r in losses] == [0] * 4 + [1] * 4
    # the epoch loss equals the mean of the iteration losses (equal minibatch sizes)
    epoch = [float(r["value"]) for r in rows if r["name"] == "train/epoch_loss"]
    first = [float(r["value"]) for r in losses[:4]]
    assert epoch[0] == pytest.approx(sum(first) / 4)
    assert epoch[0] == pytest.approx(s.evaluator.training[0]["loss"])
    names = {r["name"] for r in rows}
    assert {"eval/accuracy/exp0", "eval/loss/exp1", "eval/accuracy/mean"} <= names
    assert {"metrics/A_T", "metrics/F_T", "metrics/BWT", "metrics/FWT", "metrics/LCA_2"} <= names
    assert {"time/train_seconds", "lca/b0", "lca/b2"} <= names
    # the untrained evaluation and one per experience; LCA evaluations are not logged
    evals = [r for r in rows if r["name"] == "eval/accuracy/mean"]
    assert [int(r["experience"]) for r in evals] == [-1, 0, 1]
    a_t = [float(r["value"]) for r in rows if r["name"] == "metrics/A_T"][-1]
    assert a_t == pytest.approx(s.evaluator.summary()["A_T"])


def test_csv_logger_every_n_iterations(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    _run([CSVLogger(path, every=3)])
    losses = [r for r in _rows(path) if r["name"] == "train/loss"]
    # windows of 3 never cross an epoch: 4 minibatches give windows ending at 3 and 4
    assert [int(r["iteration"]) for r in losses] == [3, 4, 7, 8]


def test_csv_logger_without_evaluator_still_logs_losses(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    _run([CSVLogger(path)], evaluator=False)
    names = {r["name"] for r in _rows(path)}
    assert names == {"train/loss"}


# ---- console ---------------------------------------------------------------------------


def test_console_plain_lines() -> None:
    out = io.StringIO()
    _run([ConsoleLogger(file=out)])
    text = out.getvalue()
    assert "\r" not in text  # no progress bar on a non-terminal
    assert text.count("epoch 1/1: loss") == 2
    assert "eval untrained model: mean accuracy" in text
    assert "eval after exp 1: mean accuracy" in text and "A_T" in text
    assert "exp 0 trained in" in text


def test_console_progress_bars() -> None:
    out = io.StringIO()
    _run([ConsoleLogger(file=out, interactive=True, flush_every=2)], epochs=2)
    text = out.getvalue()
    assert "exp 0 epoch 1/2" in text and "exp 1 epoch 2/2" in text
    assert "4/4" in text  # the bar counts the epoch's minibatches
    assert "loss=" in text  # the postfix shows the recent loss
    assert text.count("epoch 2/2: loss") == 2


def test_console_bad_option() -> None:
    with pytest.raises(TypeError, match="interactive"):
        ConsoleLogger(interactive="yes")  # type: ignore[arg-type]


# ---- JSON ----------------------------------------------------------------------------


def test_json_results_writer(tmp_path: Path) -> None:
    path = tmp_path / "out" / "results.json"
    s = _run([JSONResultsWriter(path, extra={"strategy": "naive", "A_T": "overridden"})])
    data = json.loads(path.read_text())
    assert data["strategy"] == "naive"
    assert data["A_T"] == pytest.approx(s.evaluator.summary()["A_T"])
    assert data["accuracy_matrix"] == s.evaluator.summary()["accuracy_matrix"]
    assert len(data["lca_curves"]) == 2
    assert not list(path.parent.glob(".*tmp"))  # the temporary file was renamed


def test_json_writer_without_evaluator_raises_on_write(tmp_path: Path) -> None:
    writer = JSONResultsWriter(tmp_path / "r.json")
    s = _run([writer], evaluator=False)  # after_training skips quietly
    assert not (tmp_path / "r.json").exists()
    with pytest.raises(ValueError, match="evaluator"):
        writer.write(s)


# ---- TensorBoard ---------------------------------------------------------------------


def test_tensorboard_logger_writes_scalars(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, every=2)
    s = _run([logger])
    logger.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {
        "train/loss",
        "train/epoch_loss",
        "train/epoch_accuracy",
        "eval/accuracy/exp0",
        "eval/accuracy/mean",
        "metrics/A_T",
        "metrics/LCA_2",
        "lca/exp1",
        "time/train_seconds",
    } <= tags
    assert [e.step for e in acc.Scalars("train/loss")] == [2, 4, 6, 8]
    a_t = acc.Scalars("metrics/A_T")
    assert [e.step for e in a_t] == [1, 2]
    assert a_t[-1].value == pytest.approx(s.evaluator.summary()["A_T"], abs=1e-6)
    assert len(acc.Scalars("lca/exp1")) == 3


def test_tensorboard_steps_agree_and_evaluation_loss_and_plots_reach_it(tmp_path: Path) -> None:
    """Per-experience tags share one axis, experiences trained (0: untrained); training
    tags count iterations; the evaluation loss and the PNG plots are there too."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from agem.reporting.plots import write_run_plots

    logger = TensorBoardLogger(tmp_path, every=2)
    s = _run([logger])
    plots = write_run_plots(s.evaluator.results, tmp_path / "plots")
    logger.log_plots([*plots, tmp_path / "not-a-plot.txt"])
    logger.close()
    acc = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    acc.Reload()
    record = s.evaluator.results["evaluations"][-1]
    for tag in ("eval/accuracy/mean", "eval/loss/mean", "eval/loss/exp0", "eval/accuracy/exp1"):
        assert [e.step for e in acc.Scalars(tag)] == [0, 1, 2], tag
    for tag in ("metrics/A_T", "time/train_seconds"):
        assert [e.step for e in acc.Scalars(tag)] == [1, 2], tag
    losses = list(record["loss"].values())
    mean_loss = acc.Scalars("eval/loss/mean")[-1].value
    assert mean_loss == pytest.approx(sum(losses) / len(losses), rel=1e-5)
    assert acc.Scalars("eval/loss/exp1")[-1].value == pytest.approx(record["loss"]["1"], rel=1e-5)
    images = set(acc.Tags()["images"])
    assert images == {f"plots/{Path(p).stem}" for p in plots if str(p).endswith(".png")}
    (image,) = acc.Images("plots/accuracy_matrix")
    png = (tmp_path / "plots" / "accuracy_matrix.png").read_bytes()
    assert image.step == 2 and image.encoded_image_string == png
    assert image.width > 0 and image.height > 0


def test_console_progress_lines_off_a_terminal() -> None:
    """Off a terminal, a progress line whenever the interval has passed (here: every
    iteration), with experience, epoch, iteration, loss and the time left."""
    out = io.StringIO()
    console = ConsoleLogger(file=out, progress_every=1e-9, total_experiences=2)
    _run([console], epochs=2)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("progress:")]
    assert len(lines) == 2 * 2 * 4  # 2 experiences x 2 epochs x 4 minibatches of 10
    assert lines[0].startswith("progress: exp 0 (1/2) epoch 1/2 iteration 1/4  loss ")
    assert lines[-1].startswith("progress: exp 1 (2/2) epoch 2/2 iteration 4/4  loss ")
    assert all(" ETA " in line for line in lines)
    assert lines[-1].endswith("ETA 0 s")
    loss = float(lines[0].split("loss ")[1].split()[0])
    assert 0 < loss < 10


def test_console_progress_interval_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("AGEM_PROGRESS_INTERVAL", "2.5")
    assert ConsoleLogger(file=io.StringIO()).progress_every == 2.5
    monkeypatch.setenv("AGEM_PROGRESS_INTERVAL", "0")  # off
    out = io.StringIO()
    _run([ConsoleLogger(file=out)])
    assert "progress:" not in out.getvalue()
    monkeypatch.setenv("AGEM_PROGRESS_INTERVAL", "soon")
    with pytest.raises(ValueError, match="AGEM_PROGRESS_INTERVAL must be a number of seconds"):
        ConsoleLogger(file=io.StringIO())
    with pytest.raises(ValueError, match="progress_every must be"):
        ConsoleLogger(file=io.StringIO(), progress_every=-1)
