"""Build the model, optimizer and strategy of a run from its `RunConfig`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from agem import models
from agem.benchmarks.streams import Benchmark
from agem.core import optimizers
from agem.core.template import BaseTemplate
from agem.models.init import truncated_normal_
from agem.runs.config import INITS, MODELS, RunConfig
from agem.strategies.registry import get_strategy


def build_model(
    name: str,
    benchmark: Benchmark,
    *,
    hidden_sizes: tuple[int, ...],
    progressive: bool = False,
    init: str = "default",
) -> nn.Module:
    """A model sized for the benchmark's inputs and classes (multi-head with task labels;
    `progressive`: a `ProgressiveNet` of MLP columns, one per task); `init` "truncated_normal"
    re-initialises an MLP as the A-GEM authors' code does (`agem.models.init`)."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of: {', '.join(INITS)}")
    if init != "default" and (name != "mlp" or progressive):
        raise ValueError(f"init {init!r} applies to the mlp (not progressive networks)")
    first = benchmark.train_stream[0]
    x = first.dataset[0][0]
    n_out = (
        len(first.classes_in_this_experience)
        if benchmark.task_labels
        else max(
            benchmark.n_classes,
            1 + max(c for e in benchmark.train_stream for c in e.classes_in_this_experience),
        )
    )
    if progressive:
        if name != "mlp" or not benchmark.task_labels:
            raise ValueError("a progressive network needs --model mlp and --task-labels")
        return models.ProgressiveNet(int(x.numel()), hidden_sizes, n_out)
    if name == "mlp":
        cls = models.MultiHeadMLP if benchmark.task_labels else models.MLP
        model = cls(int(x.numel()), hidden_sizes, n_out)
        return truncated_normal_(model) if init == "truncated_normal" else model
    if name == "resnet18":
        if x.dim() != 3:
            raise ValueError(
                f"resnet18 needs image inputs [C, H, W]; this benchmark gives "
                f"shape {tuple(x.shape)} (use a non-flattened benchmark or --model mlp)"
            )
        resnet = getattr(models, "ReducedResNet18", None)
        if resnet is None:
            raise ValueError("resnet18 is not available in this version")
        return resnet(n_out, in_channels=int(x.shape[0]), multihead=benchmark.task_labels)
    raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")


def build_optimizer(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer `config` names (SGD, Adam or AdamW) over the model's parameters
    (Adam and AdamW with `capturable=True` under `cuda_graph`): torch's, in the form
    that does not import `torch._dynamo` (`agem.core.optimizers`)."""
    params = model.parameters()
    if config.optimizer == "sgd":
        return optimizers.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    # a captured step needs Adam's step counter on the device
    capturable = config.cuda_graph
    if config.optimizer == "adam":
        return optimizers.Adam(
            params, lr=config.lr, weight_decay=config.weight_decay, capturable=capturable
        )
    if config.optimizer == "adamw":
        return optimizers.AdamW(
            params, lr=config.lr, weight_decay=config.weight_decay, capturable=capturable
        )
    raise ValueError(f"unknown optimizer {config.optimizer!r}")


def build_strategy(
    name: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    options: dict[str, Any],
    common: dict[str, Any],
) -> BaseTemplate:
    """The strategy `name` (see `agem.strategies.registry`) with its own options from
    `options` and the `common` template arguments."""
    return get_strategy(name).build(model, optimizer, options, common)
