"""`TensorBoardLogger`: scalars in TensorBoard event files (`torch.utils.tensorboard`)."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agem.plugins.loggers.base import (
    Logger,
    LossPoint,
    evaluation_scalars,
    experiences_trained,
)
from agem.plugins.loggers.csv_logger import metric_names

if TYPE_CHECKING:
    from agem.core.template import BaseTemplate


class TensorBoardLogger(Logger):
    """Write TensorBoard scalars into `log_dir`.

    Tags and their steps (two axes, as every logger's; see `agem.plugins.loggers.base`):

    - step = training iterations (from 1): `train/loss` (a window of `every`
      iterations), `train/epoch_loss`, `train/epoch_accuracy`;
    - step = experiences trained (0: the untrained model, 1 after the first experience):
      `eval/accuracy/exp{j}`, `eval/loss/exp{j}`, `eval/accuracy/mean`, `eval/loss/mean`,
      `metrics/<name>` (A_T, F_T, ...), `time/train_seconds`, and the images
      `plots/<file stem>` that `log_plots` is given (PNG files);
    - step = minibatches into experience k (0: before its first): `lca/exp{k}`.

    Events are flushed after each experience and evaluation; call `close()` when done.
    The event file is created with the first scalar.

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
        self._last_step = 0  # experiences trained, as far as logged
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
        row = record["after_experience"]
        step = row + 1
        for name, value in evaluation_scalars(record).items():
            self.writer.add_scalar(name, value, step)
        if row >= 0:
            for name in metric_names(summary):
                self.writer.add_scalar(f"metrics/{name}", summary[name], step)
                self.final_metrics[name] = summary[name]
        self._last_step = max(self._last_step, step)
        self.writer.flush()

    def log_experience(self, strategy: BaseTemplate, record: dict[str, Any]) -> None:
        k = record["experience"]
        for b, acc in enumerate(record.get("lca_curve", [])):
            self.writer.add_scalar(f"lca/exp{k}", acc, b)
        if "train_seconds" in record:
            step = experiences_trained(strategy)
            self.writer.add_scalar("time/train_seconds", record["train_seconds"], step)
            self._last_step = max(self._last_step, step)
        self.writer.flush()

    def log_plots(self, paths: Iterable[str | Path]) -> None:
        """Write the PNG files among `paths` as images `plots/<file stem>` (step: the
        experiences trained); other formats are skipped. The PNG bytes go in as they are."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        for path in map(Path, paths):
            data = path.read_bytes() if path.suffix.lower() == ".png" else b""
            header = png_header(data)
            if header is None:
                continue
            width, height, channels = header
            image = Summary.Image(
                height=height, width=width, colorspace=channels, encoded_image_string=data
            )
            summary = Summary(value=[Summary.Value(tag=f"plots/{path.stem}", image=image)])
            self.writer.file_writer.add_summary(summary, self._last_step)
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


#: PNG colour type -> channels (grey, RGB, palette, grey + alpha, RGBA)
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


def png_header(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, channels) from a PNG file's header; None when `data` is no PNG."""
    if len(data) < 26 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    channels = _PNG_CHANNELS.get(data[25])
    return None if channels is None else (width, height, channels)


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
