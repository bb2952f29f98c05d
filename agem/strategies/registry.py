"""The one table of strategies a run can name (`agem run --strategy NAME`).

For each strategy, a `StrategySpec` says its command-line name, its class, the run options
it reads (and the constructor keyword each one feeds), whether a fleet can train it and
whether its step can be captured in a CUDA graph (with the option values both need), and
which of its options set a piece of memory (for the check that a run fits before it
starts). The run layer reads this table to validate a config, build the strategy, warn
about options a strategy ignores and estimate memory; the fleet reads which classes it
trains; sweeps accept what the config accepts. A new method is one `register` call here
(plus a `RunConfig` field for each new option).

`get_strategy` also finds a strategy of your own, registered by an installed package in
the entry-point group `agem.strategies` or given as an import path `package.module:Class`
(see `agem.importpath`): a `BaseTemplate` subclass, or a `StrategySpec`. Its constructor
gets the `--strategy-args` as keywords (beside the keywords its spec's options feed); it
is not in the table, and a fleet does not train it.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from torch.optim import Optimizer

from agem.core.template import BaseTemplate
from agem.importpath import STRATEGIES_GROUP, OwnCodeError, resolve
from agem.strategies.agem import AGEM
from agem.strategies.cumulative import Cumulative
from agem.strategies.ewc import EWC
from agem.strategies.gem import GEM
from agem.strategies.mas import MAS
from agem.strategies.naive import Naive
from agem.strategies.pnn import PNN
from agem.strategies.replay import Replay
from agem.strategies.rwalk import RWalk
from agem.strategies.si import SI


@dataclass(frozen=True)
class MemoryPiece:
    """Patterns a strategy stores, as its options set them: `patterns(options, n_train,
    n_experiences)` with `n_train` the largest experience's training set size."""

    option: str  # the option that sets the size, named in the error
    what: str  # e.g. "the replay buffer"
    patterns: Callable[[Mapping[str, Any], int, int], int]


@dataclass(frozen=True)
class StrategySpec:
    """One strategy: everything the run layer, the command line and the fleet know of it.

    `options` maps each run option the strategy reads to its constructor keyword;
    `arguments`, when given, computes the keywords from the options instead (for options
    that depend on one another). `fleet_requires` / `graph_requires` are option values a
    fleet / a captured step needs beside the capability itself. `gradient_buffers`
    counts the flat copies of the gradient the method keeps (for the memory estimate).
    `progressive`: the run builds a `ProgressiveNet` (MLP columns, one per task), which
    needs task labels (`needs_task_labels`).
    """

    name: str
    cls: type[BaseTemplate]
    options: Mapping[str, str] = field(default_factory=dict)
    arguments: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    fleet: bool = False
    graph: bool = False
    fleet_requires: Mapping[str, Any] = field(default_factory=dict)
    graph_requires: Mapping[str, Any] = field(default_factory=dict)
    memory: tuple[MemoryPiece, ...] = ()
    gradient_buffers: int = 0
    progressive: bool = False  # its model is a ProgressiveNet: an MLP column per task
    needs_task_labels: bool = False

    def keywords(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The constructor keywords for the run options `options` (all of a config's)."""
        if self.arguments is not None:
            return self.arguments(options)
        return {keyword: options[option] for option, keyword in self.options.items()}

    def build(
        self,
        model: nn.Module,
        optimizer: Optimizer,
        options: Mapping[str, Any],
        common: Mapping[str, Any],
    ) -> BaseTemplate:
        """The strategy, with its own keywords from `options` and the `common` template
        arguments (minibatch sizes, device, seed, plugins, evaluator, ...)."""
        keywords = {**self.keywords(options), **common}
        try:
            inspect.signature(self.cls).bind(model, optimizer, **keywords)
        except TypeError as err:
            raise OwnCodeError(f"--strategy {self.name} cannot take its arguments: {err}") from None
        return self.cls(model, optimizer, **keywords)


_STRATEGIES: dict[str, StrategySpec] = {}
_PLUGGED: dict[str, StrategySpec] = {}  # strategies of your own, resolved once


def register(spec: StrategySpec) -> StrategySpec:
    """Add `spec` to the table (a ValueError if its name is taken)."""
    if spec.name in _STRATEGIES:
        raise ValueError(f"a strategy named {spec.name!r} is registered already")
    _STRATEGIES[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove the strategy `name` from the table (e.g. one a test registered)."""
    _STRATEGIES.pop(name, None)


def strategy_names() -> tuple[str, ...]:
    """The names `--strategy` accepts, in the order they were registered."""
    return tuple(_STRATEGIES)


def get_strategy(name: str) -> StrategySpec:
    """The spec of strategy `name`: a registered one, or one of your own (an entry point of
    `agem.strategies` or an import path); else a ValueError naming the choices."""
    spec = _STRATEGIES.get(name)
    if spec is not None:
        return spec
    if name not in _PLUGGED:
        found = resolve(name, group=STRATEGIES_GROUP, option="--strategy", builtins=_STRATEGIES)
        _PLUGGED[name] = _plugged_spec(name, found)
    return _PLUGGED[name]


def is_registered(name: str) -> bool:
    """Whether `name` is in the table (a built-in strategy, or one `register` added)."""
    return name in _STRATEGIES


def _plugged_spec(name: str, found: Any) -> StrategySpec:
    """The spec of a strategy of your own: `found` is a `StrategySpec` or a template class;
    its constructor also gets the run's `strategy_args`."""
    if isinstance(found, type) and issubclass(found, BaseTemplate):
        found = StrategySpec(name, found)
    if not isinstance(found, StrategySpec):
        raise OwnCodeError(
            f"--strategy {name} is neither a strategy class (an agem.BaseTemplate subclass) nor "
            f"an agem.strategies.registry.StrategySpec (it is {found!r})"
        )
    own = found

    def arguments(options: Mapping[str, Any]) -> dict[str, Any]:
        return {**own.keywords(options), **(options.get("strategy_args") or {})}

    return dataclasses.replace(found, name=name, arguments=arguments, fleet=False)


def strategy_specs() -> tuple[StrategySpec, ...]:
    """Every registered strategy."""
    return tuple(_STRATEGIES.values())


def readers(option: str) -> tuple[str, ...]:
    """The strategies that read run option `option` (empty: not a strategy option)."""
    return tuple(s.name for s in _STRATEGIES.values() if option in s.options)


def _episodic(options: Mapping[str, Any], n_train: int, n_experiences: int) -> int:
    return min(options["patterns_per_experience"], n_train) * n_experiences


def _ewc_arguments(options: Mapping[str, Any]) -> dict[str, Any]:
    online = options["ewc_mode"] == "online"
    return {
        "ewc_lambda": options["ewc_lambda"],
        "mode": options["ewc_mode"],
        "decay_factor": options["decay_factor"] if online else None,
    }


_EPISODIC = MemoryPiece("patterns_per_experience", "the episodic memory", _episodic)

register(StrategySpec("naive", Naive, fleet=True, graph=True))
register(
    StrategySpec(
        "agem",
        AGEM,
        options={
            "patterns_per_experience": "patterns_per_experience",
            "sample_size": "sample_size",
            "sampling": "sampling",
            "memory_filling": "memory_filling",
        },
        fleet=True,
        graph=True,
        fleet_requires={"sampling": "uniform", "memory_filling": "random"},
        graph_requires={"sampling": "uniform"},
        memory=(_EPISODIC,),
        gradient_buffers=2,
    )
)
register(
    StrategySpec(
        "gem",
        GEM,
        options={
            "patterns_per_experience": "patterns_per_experience",
            "memory_strength": "memory_strength",
            "memory_filling": "memory_filling",
            "gem_solver": "solver",
        },
        fleet=True,
        memory=(_EPISODIC,),
    )
)
register(
    StrategySpec(
        "replay",
        Replay,
        options={"mem_size": "mem_size"},
        fleet=True,
        memory=(MemoryPiece("mem_size", "the replay buffer", lambda o, n, e: o["mem_size"]),),
    )
)
register(
    StrategySpec(
        "ewc",
        EWC,
        options={"ewc_lambda": "ewc_lambda", "ewc_mode": "mode", "decay_factor": "decay_factor"},
        arguments=_ewc_arguments,
        fleet=True,
    )
)
register(StrategySpec("cumulative", Cumulative, fleet=True))
register(StrategySpec("si", SI, options={"si_lambda": "si_lambda", "si_xi": "si_xi"}, fleet=True))
register(StrategySpec("mas", MAS, options={"mas_lambda": "mas_lambda"}, fleet=True))
register(
    StrategySpec(
        "rwalk",
        RWalk,
        options={"rwalk_lambda": "rwalk_lambda", "rwalk_alpha": "rwalk_alpha"},
        fleet=True,
    )
)
register(StrategySpec("pnn", PNN, progressive=True, needs_task_labels=True))
