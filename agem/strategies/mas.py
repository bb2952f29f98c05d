"""`MAS`: the training template plus `MASPlugin` (Memory Aware Synapses)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from agem.plugins.mas import MASPlugin
from agem.template import BaseTemplate


class MAS(BaseTemplate):
    """Memory Aware Synapses (Aljundi et al., 2018): importance from the output's norm.

    Args:
        mas_lambda: the penalty's weight lambda >= 0.
        per_sample: per-sample gradient magnitudes (the paper) or those of 10-sample
            minibatches (the A-GEM authors' code).
        accumulate: sum the importances of all experiences (the paper) or keep the last.
        Other keyword arguments as `BaseTemplate`. The plugin is `strategy.mas_plugin`;
        the caller's `plugins` list is not modified.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        mas_lambda: float = 0.1,
        per_sample: bool = True,
        accumulate: bool = True,
        plugins: Sequence[Any] | None = None,
        **template: Any,
    ) -> None:
        self.mas_plugin = MASPlugin(
            mas_lambda=mas_lambda, per_sample=per_sample, accumulate=accumulate
        )
        super().__init__(model, optimizer, plugins=[*(plugins or []), self.mas_plugin], **template)
