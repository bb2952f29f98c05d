"""`GEM`: the training template plus `GEMPlugin`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from agem.core.template import BaseTemplate
from agem.plugins.gem import GEMPlugin


class GEM(BaseTemplate):
    """Gradient Episodic Memory (Lopez-Paz & Ranzato, NeurIPS 2017).

    Args:
        patterns_per_experience: memory patterns stored per experience.
        memory_strength: margin gamma >= 0 on the dual variables (default 0.5).
        memory_filling: "random" or "class_balanced"; see `GEMPlugin`.
        solver, memory_gradients: as `GEMPlugin` ("auto" each by default).
        Other arguments as `BaseTemplate`. The GEM plugin is `strategy.gem_plugin`;
        the caller's `plugins` list is not modified.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        criterion: nn.Module | None = None,
        patterns_per_experience: int,
        memory_strength: float = 0.5,
        memory_filling: str = "random",
        train_mb_size: int = 1,
        train_epochs: int = 1,
        eval_mb_size: int | None = None,
        device: str | torch.device = "cpu",
        plugins: Sequence[Any] | None = None,
        evaluator: Any = None,
        seed: int | None = None,
        solver: str = "auto",
        memory_gradients: str = "auto",
    ) -> None:
        self.gem_plugin = GEMPlugin(
            patterns_per_experience,
            memory_strength,
            memory_filling=memory_filling,
            solver=solver,
            memory_gradients=memory_gradients,
        )
        super().__init__(
            model,
            optimizer,
            criterion=criterion,
            train_mb_size=train_mb_size,
            train_epochs=train_epochs,
            eval_mb_size=eval_mb_size,
            device=device,
            plugins=[*(plugins or []), self.gem_plugin],
            evaluator=evaluator,
            seed=seed,
        )
