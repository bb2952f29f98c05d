"""`PNN`: the training template plus `PNNPlugin` (progressive networks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from agem.models.progressive import ProgressiveNet
from agem.plugins.pnn import PNNPlugin
from agem.template import BaseTemplate


class PNN(BaseTemplate):
    """Progressive neural networks (Rusu et al., 2016): a new column per task, earlier
    columns frozen. `model` must be an `agem.models.ProgressiveNet`, and every experience
    must carry task labels.

    Other keyword arguments as `BaseTemplate`. The plugin is `strategy.pnn_plugin`; the
    caller's `plugins` list is not modified.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        plugins: Sequence[Any] | None = None,
        **template: Any,
    ) -> None:
        if not isinstance(model, ProgressiveNet):
            raise TypeError(f"PNN needs an agem.models.ProgressiveNet, got {type(model).__name__}")
        self.pnn_plugin = PNNPlugin()
        super().__init__(model, optimizer, plugins=[*(plugins or []), self.pnn_plugin], **template)
