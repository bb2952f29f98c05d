"""`SI`: the training template plus `SIPlugin` (Synaptic Intelligence, path integral)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from agem.plugins.si import SIPlugin
from agem.template import BaseTemplate


class SI(BaseTemplate):
    """Synaptic Intelligence (Zenke et al., 2017): the path-integral importance.

    Args:
        si_lambda: the penalty's weight lambda >= 0.
        si_xi: the damping xi > 0 of the importance's denominator.
        clip_negative: clip each experience's importance at zero (the A-GEM authors' code).
        Other keyword arguments as `BaseTemplate`. The plugin is `strategy.si_plugin`;
        the caller's `plugins` list is not modified.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        si_lambda: float = 0.01,
        si_xi: float = 1e-3,
        clip_negative: bool = False,
        plugins: Sequence[Any] | None = None,
        **template: Any,
    ) -> None:
        self.si_plugin = SIPlugin(si_lambda=si_lambda, si_xi=si_xi, clip_negative=clip_negative)
        super().__init__(model, optimizer, plugins=[*(plugins or []), self.si_plugin], **template)
