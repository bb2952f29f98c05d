"""`Clock`: the training counters that plugins read."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Clock:
    """Counters updated by the template after each hook of the same level has fired.

    Attributes:
        train_exp_counter: experiences trained so far (the index of the current one).
        train_exp_epochs: epochs finished on the current experience.
        train_epoch_iterations: minibatches finished in the current epoch.
        train_exp_iterations: minibatches finished on the current experience.
        train_iterations: minibatches finished since the strategy was made.
    """

    train_exp_counter: int = 0
    train_exp_epochs: int = 0
    train_epoch_iterations: int = 0
    train_exp_iterations: int = 0
    train_iterations: int = 0

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, int(value))
