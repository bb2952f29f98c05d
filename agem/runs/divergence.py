"""`DivergenceCheck`: stop training when the loss becomes NaN or infinite, or blows up.

A loss "blows up" when it exceeds `blowup` (default a million) times the run's first
training loss: with a learning rate far too large the loss can stay finite (1e11, then a
dead network's constant 1e5) while the model has stopped learning anything, and such a
run must not end as if it were a result.

Checking every loss on the host would synchronise a GPU once per iteration. Instead the
losses stay on the device and are checked in blocks: every `every` iterations and at the
end of each epoch, one `isfinite(...).all()` read-back covers the whole block, and only a
block that holds a bad value is searched for its first bad iteration. The report is exact
(the first iteration whose loss was not finite); the run stops at most `every` iterations
after it, and always before the experience ends (so no checkpoint holds a diverged model).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from agem.core.plugin import Plugin

if TYPE_CHECKING:
    from agem.core.template import BaseTemplate


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite at `experience`, `iteration` (from 1)."""

    def __init__(self, experience: int, iteration: int, value: float, why: str = "") -> None:
        self.experience = experience
        self.iteration = iteration
        self.value = value
        super().__init__(
            f"training diverged: the loss became {value:.4g}{why} at experience {experience}, "
            f"iteration {iteration}"
        )


class DivergenceCheck(Plugin):
    """Raise `TrainingDiverged` at the first non-finite training loss (see module doc)."""

    def __init__(self, *, every: int = 100, blowup: float = 1e6) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        if not isinstance(blowup, (int, float)) or not blowup > 1:
            raise ValueError(f"blowup must be a number > 1, got {blowup!r}")
        self.every = every
        self.blowup = float(blowup)
        self._reference: Tensor | None = None  # the run's first loss, on the device
        self._losses: list[Tensor] = []
        self._first = 1  # the experience iteration (from 1) of the first buffered loss

    def before_training_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        self._losses = []
        self._first = strategy.clock.train_exp_iterations + 1

    def after_training_iteration(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        loss = strategy.loss
        if loss is None:
            return
        value = loss.detach()
        self._losses.append(value if value.dim() == 0 else value.mean())
        if len(self._losses) >= self.every:
            self.check(strategy)

    def after_training_epoch(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        self.check(strategy)

    def check(self, strategy: BaseTemplate) -> None:
        """Check the buffered losses (one read-back); raise at the first bad one."""
        if not self._losses:
            return
        values = torch.stack(self._losses).float()
        first = self._first
        self._first += len(self._losses)
        self._losses = []
        if self._reference is None:
            self._reference = values[0].abs().clamp_min(1e-3)
        limit = self._reference.to(values.device) * self.blowup
        bad = ~torch.isfinite(values) | (values.abs() > limit)
        if not bool(bad.any()):
            return
        index = int(bad.nonzero()[0, 0])
        value = float(values[index])
        why = (
            ""
            if value != value or abs(value) == float("inf")
            else (f" (over {self.blowup:g} times the first loss, {float(self._reference):.4g})")
        )
        exp = strategy.experience
        k = exp.current_experience if exp is not None else -1
        raise TrainingDiverged(k, first + index, value, why)

    def state_dict(self) -> dict[str, Any]:
        ref = self._reference
        return {"reference": None if ref is None else float(ref)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ref = state.get("reference")
        self._reference = None if ref is None else torch.tensor(ref, dtype=torch.float32)
