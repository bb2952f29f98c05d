"""Build the model, optimizer and strategy of a run from its `RunConfig`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from agem.benchmarks.streams import Benchmark
from agem.runs.config import INITS, MODELS, STRATEGIES, RunConfig
from agem.template import BaseTemplate


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
    from agem import models
    from agem.models.init import truncated_normal_

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
    (Adam and AdamW with `capturable=True` under `cuda_graph`)."""
    params = model.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    # a captured step needs Adam's step counter on the device
    capturable = config.cuda_graph
    if config.optimizer == "adam":
        return torch.optim.Adam(
            params, lr=config.lr, weight_decay=config.weight_decay, capturable=capturable
        )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(
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
    """The strategy `name` with its own `options` and the `common` template arguments."""
    import agem

    if name == "naive":
        return agem.Naive(model, optimizer, **common)
    if name == "agem":
        return agem.AGEM(
            model,
            optimizer,
            patterns_per_experience=options["patterns_per_experience"],
            sample_size=options["sample_size"],
            sampling=options["sampling"],
            memory_filling=options["memory_filling"],
            **common,
        )
    if name == "gem":
        return agem.GEM(
            model,
            optimizer,
            patterns_per_experience=options["patterns_per_experience"],
            memory_strength=options["memory_strength"],
            memory_filling=options["memory_filling"],
            **common,
        )
    if name == "replay":
        return agem.Replay(model, optimizer, mem_size=options["mem_size"], **common)
    if name == "ewc":
        return agem.EWC(
            model,
            optimizer,
            ewc_lambda=options["ewc_lambda"],
            mode=options["ewc_mode"],
            decay_factor=options["decay_factor"] if options["ewc_mode"] == "online" else None,
            **common,
        )
    if name == "cumulative":
        return agem.Cumulative(model, optimizer, **common)
    if name == "si":
        return agem.SI(
            model, optimizer, si_lambda=options["si_lambda"], si_xi=options["si_xi"], **common
        )
    if name == "mas":
        return agem.MAS(model, optimizer, mas_lambda=options["mas_lambda"], **common)
    if name == "rwalk":
        return agem.RWalk(
            model,
            optimizer,
            rwalk_lambda=options["rwalk_lambda"],
            rwalk_alpha=options["rwalk_alpha"],
            **common,
        )
    if name == "pnn":
        return agem.PNN(model, optimizer, **common)
    raise ValueError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")
