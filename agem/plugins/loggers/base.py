"""What every logger shares: loss buffering on the device and the evaluator's records.

Loggers are plugins that run after the evaluator (`order = 200`) and read what it
recorded: per-epoch training loss and accuracy, evaluations, per-experience timing and
LCA curves.

Their step axes agree: `train/*` is counted in training iterations (from 1, since the
strategy was made); everything measured once per experience (`eval/*`, `metrics/*`,
`time/*`) in experiences trained (0: the untrained model, 1 after the first experience);
`lca/exp{k}` in minibatches of experience k (0: before its first).

Per-iteration losses are kept as device tensors and read back in blocks (`flush_every`
iterations at a time, and at the end of each epoch), so logging costs no host
synchronisation per iteration. LCA evaluations (`evaluator.probing`) are not logged as
evaluations.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from agem.core.plugin import Plugin

if TYPE_CHECKING:
    from agem.core.template import BaseTemplate


def check_count(name: str, value: Any) -> int:
    """`value` as a positive int, or a ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def evaluation_scalars(record: dict[str, Any]) -> dict[str, float]:
    """The scalars of an evaluation record: `eval/accuracy/exp{j}`, `eval/loss/exp{j}` for
    each test experience j, then `eval/accuracy/mean` and `eval/loss/mean`."""
    accs, losses = record["accuracy"], record["loss"]
    out: dict[str, float] = {}
    for j, acc in accs.items():
        out[f"eval/accuracy/exp{j}"] = acc
        out[f"eval/loss/exp{j}"] = losses[j]
    out["eval/accuracy/mean"] = sum(accs.values()) / len(accs)
    out["eval/loss/mean"] = sum(losses.values()) / len(losses)
    return out


def experiences_trained(strategy: BaseTemplate) -> int:
    """The step of per-experience scalars in a training hook: the experiences trained,
    counting the current one (1 after the first). An evaluation's step is its
    `after_experience + 1` (0 for the untrained model)."""
    return strategy.clock.train_exp_counter + 1


@dataclass(frozen=True)
class LossPoint:
    """Mean training loss over `iterations` consecutive minibatches ending at `iteration`
    (counted from 1 since the strategy was made)."""

    iteration: int
    experience: int
    epoch: int
    loss: float
    iterations: int


class LossBuffer:
    """Per-iteration losses held on the device, read back `flush_every` at a time.

    `every = 1` gives one point per iteration; `every = N` one point per window of N
    iterations (the mean). Windows never cross a flush at the end of an epoch.
    """

    def __init__(self, *, every: int = 1, flush_every: int = 100) -> None:
        self.every = check_count("every", every)
        check_count("flush_every", flush_every)
        self.flush_size = -(-max(flush_every, every) // every) * every  # a multiple of every
        self._values: list[Tensor] = []
        self._meta: list[tuple[int, int, int]] = []

    def append(
        self, loss: Tensor, *, iteration: int, experience: int, epoch: int
    ) -> list[LossPoint]:
        """Keep one iteration's loss; return the points read back if a flush happened."""
        value = loss.detach()
        self._values.append(value if value.dim() == 0 else value.mean())
        self._meta.append((iteration, experience, epoch))
        if len(self._values) >= self.flush_size:
            return self.flush()
        return []

    def flush(self) -> list[LossPoint]:
        """Read back every buffered loss (one host synchronisation) as points."""
        if not self._values:
            return []
        values = torch.stack(self._values).double().tolist()
        meta = self._meta
        self._values, self._meta = [], []
        points = []
        for start in range(0, len(values), self.every):
            chunk = values[start : start + self.every]
            iteration, experience, epoch = meta[start + len(chunk) - 1]
            points.append(
                LossPoint(iteration, experience, epoch, sum(chunk) / len(chunk), len(chunk))
            )
        return points


class Logger(Plugin):
    """Base of the loggers: turns hooks into `log_*` calls with plain data.

    Subclasses override the `log_*` methods they need. `every` and `flush_every` set the
    per-iteration loss points (see `LossBuffer`); a logger that does not log losses
    passes `losses=False`.
    """

    order = 200  # after the evaluator (100), whose records the loggers read

    def __init__(self, *, every: int = 1, flush_every: int = 100, losses: bool = True) -> None:
        self._buffer = LossBuffer(every=every, flush_every=flush_every) if losses else None
        self._seen_evaluations = 0

    # ---- what subclasses log -----------------------------------------------------------
    def log_losses(self, strategy: BaseTemplate, points: list[LossPoint]) -> None:
        """Training loss points (each a window of `every` iterations)."""

    def log_epoch(self, strategy: BaseTemplate, record: dict[str, Any]) -> None:
        """The evaluator's record of an epoch: experience, epoch, loss, accuracy, ..."""

    def log_evaluation(
        self, strategy: BaseTemplate, record: dict[str, Any], summary: dict[str, Any]
    ) -> None:
        """An evaluation on test experiences, and the evaluator's summary after it."""

    def log_experience(self, strategy: BaseTemplate, record: dict[str, Any]) -> None:
        """The end of a training experience: timing, and its LCA curve if recorded."""

    # ---- for the run that owns the logger ------------------------------------------------
    def resume(self, evaluator: Any) -> None:
        """Continue after a checkpoint was restored: the evaluations `evaluator` already
        holds were logged before, so only later ones are."""
        self._seen_evaluations = len(getattr(evaluator, "evaluations", []))

    def flush(self) -> None:
        """Write what is buffered to the logger's files (no-op for loggers without)."""

    def log_plots(self, paths: Iterable[str | Path]) -> None:
        """Image files of the finished run (e.g. its PNG plots), for loggers that keep them."""

    def log_run_folder(self, folder: Path, results: dict[str, Any]) -> None:
        """The finished run's folder and its final `results`, for loggers that keep them."""

    def close(self, status: str = "complete") -> None:
        """The run ended with `status` ("complete", "interrupted", "failed", ...): write
        what is left and release the logger's files or connections (idempotent)."""

    # ---- hooks -------------------------------------------------------------------------
    @staticmethod
    def evaluator(strategy: BaseTemplate) -> Any:
        """The strategy's evaluator, or None when it was disabled."""
        return getattr(strategy, "evaluator", None)

    def after_training_iteration(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        if self._buffer is None or strategy.loss is None:
            return
        exp = strategy.experience
        points = self._buffer.append(
            strategy.loss,
            iteration=strategy.clock.train_iterations + 1,
            experience=exp.current_experience if exp is not None else -1,
            epoch=strategy.clock.train_exp_epochs,
        )
        if points:
            self.log_losses(strategy, points)

    def after_training_epoch(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        if self._buffer is not None:
            points = self._buffer.flush()
            if points:
                self.log_losses(strategy, points)
        evaluator = self.evaluator(strategy)
        records = getattr(evaluator, "training", None)
        exp = strategy.experience
        if records and exp is not None:
            last = records[-1]
            if (
                last["experience"] == exp.current_experience
                and last["epoch"] == strategy.clock.train_exp_epochs
            ):
                self.log_epoch(strategy, dict(last))

    def after_training_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        evaluator = self.evaluator(strategy)
        exp = strategy.experience
        if evaluator is None or exp is None:
            return
        k = exp.current_experience
        record = dict(getattr(evaluator, "experiences", {}).get(k, {"experience": k}))
        curve = getattr(evaluator, "lca_curves", {}).get(k)
        if curve is not None:
            record["lca_curve"] = list(curve)
        self.log_experience(strategy, record)

    def after_eval(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        evaluator = self.evaluator(strategy)
        if evaluator is None or getattr(evaluator, "probing", False):
            return
        evaluations = getattr(evaluator, "evaluations", [])
        if len(evaluations) > self._seen_evaluations:
            self._seen_evaluations = len(evaluations)
            self.log_evaluation(strategy, evaluations[-1], evaluator.summary())
