"""`CSVLogger`: training losses, epochs, evaluations and metrics in one tidy CSV file."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agem.atomic import open_append
from agem.plugins.loggers.base import Logger, LossPoint, evaluation_scalars

if TYPE_CHECKING:
    from agem.core.template import BaseTemplate

COLUMNS = ("iteration", "experience", "epoch", "name", "value")


class CSVLogger(Logger):
    """Write `path` (e.g. `metrics.csv`) with columns iteration, experience, epoch, name, value.

    One row per logged number, so the file loads straight into a data frame:

    - `train/loss`: mean training loss of each window of `every` iterations (`every = 1`:
      every iteration); `iteration` is the last iteration of the window (from 1).
    - `train/epoch_loss`, `train/epoch_accuracy`: per epoch (from the evaluator).
    - `eval/accuracy/exp{j}`, `eval/loss/exp{j}`, `eval/accuracy/mean`, `eval/loss/mean`:
      each evaluation on
      test experiences; `experience` is the last experience trained (-1: untrained).
    - `metrics/A_T`, `metrics/F_T`, ...: the evaluator's metrics after each evaluation.
    - `time/train_seconds`, `time/lca_seconds`, `lca/b{b}`: per trained experience.

    The file is started afresh by the first row and appended to at each read-back
    (every `flush_every` iterations, each epoch end and each evaluation), never through
    a symbolic link.
    """

    def __init__(self, path: str | Path, *, every: int = 1, flush_every: int = 100) -> None:
        super().__init__(every=every, flush_every=flush_every)
        self.path = Path(path)
        self._started = False

    def resume(self, evaluator: Any) -> None:
        """Continue after a checkpoint: append to the file it restored (if any)."""
        super().resume(evaluator)
        self._started = self.path.is_file()

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if not self._started:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        raw = open_append(self.path, truncate=not self._started, regular=False)
        with io.TextIOWrapper(raw, encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            if not self._started:
                writer.writerow(COLUMNS)
                self._started = True
            writer.writerows(rows)

    def log_losses(self, strategy: BaseTemplate, points: list[LossPoint]) -> None:
        self._write([(p.iteration, p.experience, p.epoch, "train/loss", p.loss) for p in points])

    def log_epoch(self, strategy: BaseTemplate, record: dict[str, Any]) -> None:
        it, k, e = record["train_iterations"], record["experience"], record["epoch"]
        self._write(
            [
                (it, k, e, "train/epoch_loss", record["loss"]),
                (it, k, e, "train/epoch_accuracy", record["accuracy"]),
            ]
        )

    def log_evaluation(
        self, strategy: BaseTemplate, record: dict[str, Any], summary: dict[str, Any]
    ) -> None:
        it, row = record["train_iterations"], record["after_experience"]
        rows: list[tuple[Any, ...]] = [
            (it, row, "", name, value) for name, value in evaluation_scalars(record).items()
        ]
        if row >= 0:
            for name in metric_names(summary):
                rows.append((it, row, "", f"metrics/{name}", summary[name]))
        self._write(rows)

    def log_experience(self, strategy: BaseTemplate, record: dict[str, Any]) -> None:
        it, k = strategy.clock.train_iterations, record["experience"]
        rows: list[tuple[Any, ...]] = [
            (it, k, "", f"time/{key}", record[key])
            for key in ("train_seconds", "lca_seconds")
            if key in record
        ]
        for b, acc in enumerate(record.get("lca_curve", [])):
            rows.append((it, k, "", f"lca/b{b}", acc))
        self._write(rows)


def metric_names(summary: dict[str, Any]) -> list[str]:
    """The scalar metrics of an evaluator summary that have a value (A_T, F_T, ...)."""
    return [
        k
        for k in (
            "A_T",
            "F_T",
            "BWT",
            "FWT",
            *sorted(k for k in summary if k.startswith("LCA")),
            "A_T_task_il",
        )
        if isinstance(summary.get(k), float)
    ]
