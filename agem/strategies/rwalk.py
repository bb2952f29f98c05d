"""`RWalk`: the training template plus `RWalkPlugin` (Riemannian Walk)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from agem.plugins.rwalk import RWalkPlugin
from agem.template import BaseTemplate


class RWalk(BaseTemplate):
    """Riemannian Walk (Chaudhry et al., 2018): EWC++ Fisher plus the path-integral score.

    Args:
        rwalk_lambda: the penalty's weight lambda >= 0.
        rwalk_alpha: the Fisher's moving-average weight in (0, 1].
        every: steps per Fisher update and score window.
        authors: the A-GEM authors' score instead of the paper's (see `RWalkPlugin`).
        Other keyword arguments as `BaseTemplate`. The plugin is `strategy.rwalk_plugin`;
        the caller's `plugins` list is not modified.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        rwalk_lambda: float = 1.0,
        rwalk_alpha: float = 0.9,
        every: int = 10,
        authors: bool = False,
        plugins: Sequence[Any] | None = None,
        **template: Any,
    ) -> None:
        self.rwalk_plugin = RWalkPlugin(
            rwalk_lambda=rwalk_lambda, rwalk_alpha=rwalk_alpha, every=every, authors=authors
        )
        super().__init__(
            model, optimizer, plugins=[*(plugins or []), self.rwalk_plugin], **template
        )
