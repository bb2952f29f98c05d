"""`AGEM`: the training template plus `AGEMPlugin`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from agem.cuda_graph import CapturableTemplate
from agem.plugins.agem import AGEMPlugin


class AGEM(CapturableTemplate):
    """Averaged Gradient Episodic Memory (Chaudhry et al., ICLR 2019).

    Args:
        patterns_per_experience: memory patterns stored per experience.
        sample_size: memory patterns per reference gradient (default 64).
        sampling: "uniform" (the paper's) or "balanced"; see `AGEMPlugin`.
        memory_filling: "random", "class_balanced" or "ring_buffer"; see `AGEMPlugin`.
        cuda_graph: capture the step, memory sample and projection included, in a CUDA
            graph (see `agem.cuda_graph`); needs "uniform" sampling, drawn on the device.
        Other arguments as `BaseTemplate`. The A-GEM plugin is `strategy.agem_plugin`;
        the caller's `plugins` list is not modified.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        criterion: nn.Module | None = None,
        patterns_per_experience: int,
        sample_size: int = 64,
        sampling: str = "uniform",
        memory_filling: str = "random",
        train_mb_size: int = 1,
        train_epochs: int = 1,
        eval_mb_size: int | None = None,
        device: str | torch.device = "cpu",
        plugins: Sequence[Any] | None = None,
        evaluator: Any = None,
        seed: int | None = None,
        cuda_graph: bool = False,
    ) -> None:
        if cuda_graph is True and sampling != "uniform":
            raise ValueError(
                f"cuda_graph=True supports sampling='uniform' only, got {sampling!r} "
                "(balanced sampling keeps per-step state on the host)"
            )
        if cuda_graph is True and memory_filling == "ring_buffer":
            raise ValueError("cuda_graph=True supports memory_filling 'random' or 'class_balanced'")
        self.agem_plugin = AGEMPlugin(
            patterns_per_experience,
            sample_size,
            sampling=sampling,
            memory_filling=memory_filling,
        )
        super().__init__(
            model,
            optimizer,
            criterion=criterion,
            train_mb_size=train_mb_size,
            train_epochs=train_epochs,
            eval_mb_size=eval_mb_size,
            device=device,
            plugins=[*(plugins or []), self.agem_plugin],
            evaluator=evaluator,
            seed=seed,
            cuda_graph=cuda_graph,
        )
