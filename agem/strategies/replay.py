"""`Replay`: the training template plus `ReplayPlugin` (experience replay)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from agem.core.template import BaseTemplate
from agem.plugins.replay import ReplayPlugin


class Replay(BaseTemplate):
    """Experience replay from a reservoir buffer.

    Args:
        mem_size: the buffer's capacity in samples.
        class_balanced: split the buffer equally between the classes seen so far.
        Other arguments as `BaseTemplate`. The replay plugin is `strategy.replay_plugin`;
        the caller's `plugins` list is not modified.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        criterion: nn.Module | None = None,
        mem_size: int,
        class_balanced: bool = False,
        train_mb_size: int = 1,
        train_epochs: int = 1,
        eval_mb_size: int | None = None,
        device: str | torch.device = "cpu",
        plugins: Sequence[Any] | None = None,
        evaluator: Any = None,
        seed: int | None = None,
    ) -> None:
        self.replay_plugin = ReplayPlugin(mem_size, class_balanced=class_balanced)
        super().__init__(
            model,
            optimizer,
            criterion=criterion,
            train_mb_size=train_mb_size,
            train_epochs=train_epochs,
            eval_mb_size=eval_mb_size,
            device=device,
            plugins=[*(plugins or []), self.replay_plugin],
            evaluator=evaluator,
            seed=seed,
        )
