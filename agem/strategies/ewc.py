"""`EWC`: the training template plus `EWCPlugin` (Elastic Weight Consolidation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from agem.plugins.ewc import EWCPlugin
from agem.plugins.ewc_running import RunningEWCPlugin
from agem.template import BaseTemplate


class EWC(BaseTemplate):
    """Elastic Weight Consolidation with a diagonal empirical Fisher.

    Args:
        ewc_lambda: the penalty's weight lambda >= 0.
        mode: "separate" (one term per past experience), "online" (one decayed term) or
            "running" (the A-GEM authors' EWC: one running, normalised Fisher anchored at
            the last experience's weights; `agem.plugins.RunningEWCPlugin`).
        decay_factor: online mode only (required there), in [0, 1].
        Other arguments as `BaseTemplate`. The EWC plugin is `strategy.ewc_plugin`;
        the caller's `plugins` list is not modified.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        criterion: nn.Module | None = None,
        ewc_lambda: float,
        mode: str = "separate",
        decay_factor: float | None = None,
        train_mb_size: int = 1,
        train_epochs: int = 1,
        eval_mb_size: int | None = None,
        device: str | torch.device = "cpu",
        plugins: Sequence[Any] | None = None,
        evaluator: Any = None,
        seed: int | None = None,
    ) -> None:
        self.ewc_plugin: EWCPlugin | RunningEWCPlugin
        if mode == "running":
            if decay_factor is not None:
                raise ValueError("decay_factor is only used in online mode; leave it None")
            self.ewc_plugin = RunningEWCPlugin(ewc_lambda=ewc_lambda)
        else:
            self.ewc_plugin = EWCPlugin(ewc_lambda, mode=mode, decay_factor=decay_factor)
        super().__init__(
            model,
            optimizer,
            criterion=criterion,
            train_mb_size=train_mb_size,
            train_epochs=train_epochs,
            eval_mb_size=eval_mb_size,
            device=device,
            plugins=[*(plugins or []), self.ewc_plugin],
            evaluator=evaluator,
            seed=seed,
        )
