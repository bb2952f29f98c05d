"""Build the model, optimizer and strategy of a run from its `RunConfig`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from agem import models
from agem.benchmarks.streams import Benchmark
from agem.core import optimizers
from agem.core.template import BaseTemplate
from agem.importpath import OwnCodeError, call, load, split_plugin
from agem.models.init import truncated_normal_
from agem.models.registry import MODELS, get_model, is_builtin
from agem.runs.config import INITS, RunConfig
from agem.runs.lifecycle import RunInterrupted
from agem.strategies.registry import get_strategy, is_registered


@contextlib.contextmanager
def own_code_errors(what: str) -> Iterator[None]:
    """Report an error raised by code of your own (`what`, e.g. "--model pkg.mod:Net")
    in one line, as an `OwnCodeError`; a signal's `RunInterrupted` passes through."""
    try:
        yield
    except (OwnCodeError, RunInterrupted):
        raise
    except Exception as err:
        text = str(err).strip()
        line = f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__
        raise OwnCodeError(f"{what} failed: {line}") from err


def build_model(
    name: str,
    benchmark: Benchmark,
    *,
    hidden_sizes: tuple[int, ...],
    progressive: bool = False,
    init: str = "default",
    args: Mapping[str, Any] | None = None,
) -> nn.Module:
    """A model sized for the benchmark's inputs and classes (multi-head with task labels;
    `progressive`: a `ProgressiveNet` of MLP columns, one per task); `init` "truncated_normal"
    re-initialises an MLP as the A-GEM authors' code does (`agem.models.init`). A model of
    your own (`agem.models.registry`) gets `args` and the sizes it asks for by name."""
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
    if not is_builtin(name):
        if progressive:
            raise ValueError(f"--model {name}: progressive networks build their own columns")
        shape = tuple(x.shape)
        offered = {"input_shape": shape, "input_size": int(x.numel()), "num_classes": n_out}
        with own_code_errors(f"--model {name}"):
            model = call(get_model(name), args or {}, offered, what=f"--model {name}")
        if not isinstance(model, nn.Module):
            kind = type(model).__name__
            raise OwnCodeError(f"--model {name} gave a {kind}, not a torch nn.Module")
        return model
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
    spec = get_strategy(name)
    if is_registered(name):
        return spec.build(model, optimizer, options, common)
    with own_code_errors(f"--strategy {name}"):
        return spec.build(model, optimizer, options, common)


def build_plugins(texts: Sequence[str]) -> list[Any]:
    """The plugins of your own that `--plugin` values name, each built with its arguments."""
    plugins = []
    for text in texts:
        path, arguments = split_plugin(text)
        what = f"--plugin {path}"
        with own_code_errors(what):
            plugins.append(call(load(path, option="--plugin"), arguments, {}, what=what))
    return plugins
