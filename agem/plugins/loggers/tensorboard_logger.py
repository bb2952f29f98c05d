"""`TensorBoardLogger`: scalars in TensorBoard event files (`torch.utils.tensorboard`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agem.plugins.loggers.base import Logger, LossPoint
from agem.plugins.loggers.csv_logger import metric_names

if TYPE_CHECKING:
    from agem.core.template import BaseTemplate


class TensorBoardLogger(Logger):
    """Write TensorBoard scalars into `log_dir`.

    Tags and steps: `train/loss` (step: iteration; a window of `every` iterations),
    `train/epoch_loss` and `train/epoch_accuracy` (step: iteration), `eval/accuracy/exp{j}`
    and `eval/accuracy/mean` (step: training iterations so far, so that accuracy is
    plotted over training time), `metrics/<name>` (A_T, F_T, ...; step: experiences
    trained), `lca/exp{k}` (step: minibatches into experience k) and
    `time/train_seconds` (step: experience). Events are flushed after each experience and
    evaluation; call `close()` when done. The event file is created with the first scalar.

    With `hparams` (e.g. the run's config), `close()` also writes a TensorBoard
    hyperparameters summary into the same event file: those values, with the final
    `metrics/<name>` scalars as its metrics (the HPARAMS tab lists one row per run).
    """

    def __init__(
        self,
        log_dir: str | Path,
        *,
        every: int = 1,
        flush_every: int = 100,
        hparams: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(every=every, flush_every=flush_every)
        self.hparams = None if hparams is None else flat_hparams(hparams)
        self.final_metrics: dict[str, float] = {}
        self._closed = False
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # pragma: no cover - tensorboard is a dependency
            raise ImportError(
                "TensorBoardLogger needs the tensorboard package (pip install tensorboard)"
            ) from err
        self.log_dir = Path(log_dir)
        self._writer_class = SummaryWriter
        self._writer: Any = None

    @property
    def writer(self) -> Any:
        """The `SummaryWriter`, made (and its event file created) on first use."""
        if self._writer is None:
            self._writer = self._writer_class(log_dir=str(self.log_dir))
        return self._writer

    def log_losses(self, strategy: BaseTemplate, points: list[LossPoint]) -> None:
        for p in points:
            self.writer.add_scalar("train/loss", p.loss, p.iteration)

    def log_epoch(self, strategy: BaseTemplate, record: dict[str, Any]) -> None:
        step = record["train_iterations"]
        self.writer.add_scalar("train/epoch_loss", record["loss"], step)
        self.writer.add_scalar("train/epoch_accuracy", record["accuracy"], step)

    def log_evaluation(
        self, strategy: BaseTemplate, record: dict[str, Any], summary: dict[str, Any]
    ) -> None:
        step = record["train_iterations"]
        accs = record["accuracy"]
        for j, acc in accs.items():
            self.writer.add_scalar(f"eval/accuracy/exp{j}", acc, step)
        self.writer.add_scalar("eval/accuracy/mean", sum(accs.values()) / len(accs), step)
        row = record["after_experience"]
        if row >= 0:
            for name in metric_names(summary):
                self.writer.add_scalar(f"metrics/{name}", summary[name], row + 1)
                self.final_metrics[name] = summary[name]
        self.writer.flush()

    def log_experience(self, strategy: BaseTemplate, record: dict[str, Any]) -> None:
        k = record["experience"]
        for b, acc in enumerate(record.get("lca_curve", [])):
            self.writer.add_scalar(f"lca/exp{k}", acc, b)
        if "train_seconds" in record:
            self.writer.add_scalar("time/train_seconds", record["train_seconds"], k)
        self.writer.flush()

    def after_training(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        self.flush()

    def flush(self) -> None:
        """Write every scalar logged so far to the event file."""
        if self._writer is not None:
            self._writer.flush()

    def log_hparams(self, hparams: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """Write a hyperparameters summary: `hparams` and the metric tags `metrics/<name>`.

        The metric values are written as `metrics/<name>` scalars when not logged yet.
        """
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        for name, value in metrics.items():
            if name not in self.final_metrics:
                self.writer.add_scalar(f"metrics/{name}", value, 0)
        tags = {f"metrics/{name}": value for name, value in metrics.items()}
        for summary in hparams_summary(flat_hparams(hparams), tags):
            self.writer.file_writer.add_summary(summary)
        self.writer.flush()

    def close(self, status: str = "complete") -> None:
        """Write the hyperparameters summary (if `hparams` was given), flush and close."""
        if self._closed:
            return
        self._closed = True
        if self.hparams is not None:
            self.log_hparams(self.hparams, self.final_metrics)
        if self._writer is not None:
            self._writer.close()


def flat_hparams(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`values` as TensorBoard accepts hyperparameters: nested mappings flattened with
    "/" in the keys, lists as "a,b", None as "none"; numbers, strings and bools kept."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_hparams(value, f"{name}/"))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        elif isinstance(value, (list, tuple)):
            out[name] = ",".join(str(v) for v in value)
        else:
            out[name] = "none" if value is None else str(value)
    return out
