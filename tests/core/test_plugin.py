"""Plugin base class: no-op hooks, ordering, the typo guard, duck-typed plugins."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import pytest
import torch
from torch import nn

import agem
from agem.benchmarks import from_tensors
from agem.plugins import EvaluationPlugin, Plugin

HOOKS = [
    "before_training",
    "before_train_dataset_adaptation",
    "after_train_dataset_adaptation",
    "before_training_exp",
    "before_training_epoch",
    "before_training_iteration",
    "before_forward",
    "after_forward",
    "before_backward",
    "after_backward",
    "before_update",
    "after_update",
    "after_training_iteration",
    "after_training_epoch",
    "after_training_exp",
    "after_training",
    "before_eval",
    "before_eval_dataset_adaptation",
    "after_eval_dataset_adaptation",
    "before_eval_exp",
    "before_eval_iteration",
    "before_eval_forward",
    "after_eval_forward",
    "after_eval_iteration",
    "after_eval_exp",
    "after_eval",
]


def _bm() -> agem.benchmarks.Benchmark:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 3, generator=g), torch.randint(0, 2, (4,), generator=g)
    return from_tensors(train=[(x, y)], test=[(x, y)])


def _strategy(plugins: list[Any], **kw: Any) -> agem.Naive:
    model = nn.Linear(3, 2)
    return agem.Naive(
        model, torch.optim.SGD(model.parameters(), lr=0.1), train_mb_size=2, plugins=plugins, **kw
    )


def test_every_hook_is_a_documented_noop() -> None:
    p = Plugin()
    for name in HOOKS:
        method = getattr(p, name)
        assert method.__doc__, name
        params = inspect.signature(method).parameters
        assert next(iter(params)) == "strategy" and "kwargs" in params, name
        assert method(None, anything=1) is None
    assert p.state_dict() == {}
    assert p.order == 0


def test_plugins_run_in_declared_order_ties_keep_given_order() -> None:
    log: list[str] = []

    def make(tag: str, order: int | None) -> Plugin:
        class Tagged(Plugin):
            def before_training(self, strategy: Any, **kwargs: Any) -> None:
                log.append(tag)

        p = Tagged()
        if order is not None:
            p.order = order
        return p

    plugins = [make("a", 5), make("b", None), make("c", -3), make("d", 0), make("e", 5)]
    strategy = _strategy(plugins, evaluator=False)
    strategy.train(_bm().train_stream[0])
    assert log == ["c", "b", "d", "a", "e"]
    assert [getattr(p, "order", 0) for p in strategy.plugins] == [-3, 0, 0, 5, 5]


def test_class_level_order_and_evaluator_runs_last() -> None:
    class Early(Plugin):
        order = -10

    class Late(Plugin):
        order = 200

    early, late = Early(), Late()
    strategy = _strategy([late, early])
    kinds = [type(p) for p in strategy.plugins]
    assert kinds == [Early, EvaluationPlugin, Late]
    assert strategy.evaluator is strategy.plugins[1]


def test_typo_guard_warns_at_construction() -> None:
    class Typo(Plugin):
        def after_trainig_exp(self, strategy: Any, **kwargs: Any) -> None:
            pass

    with pytest.warns(UserWarning, match=r"after_trainig_exp.*'after_training_exp'") as record:
        Typo()
    assert record[0].filename == __file__  # points at the line that builds the plugin


def test_typo_guard_checks_inherited_methods_and_is_quiet_for_real_hooks() -> None:
    class Fine(Plugin):
        def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
            pass

        def helper(self) -> None:
            pass

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Fine()

    class Base(Plugin):
        def before_forwrd(self, strategy: Any, **kwargs: Any) -> None:
            pass

    class Child(Base):
        pass

    with pytest.warns(UserWarning, match="before_forwrd.*before_forward"):
        Child()


def test_plugin_subclass_without_super_init_still_works() -> None:
    class NoSuper(Plugin):
        def __init__(self, k: int) -> None:
            self.k = k
            self.calls = 0

        def after_update(self, strategy: Any, **kwargs: Any) -> None:
            self.calls += self.k

    p = NoSuper(2)
    _strategy([p]).train(_bm().train_stream[0])
    assert p.calls == 2 * 2  # two minibatches


def test_duck_typed_plugin_without_base_class() -> None:
    class Duck:  # no Plugin base, no order attribute, only a few hooks
        def __init__(self) -> None:
            self.log: list[tuple[str, dict[str, Any]]] = []

        def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
            self.log.append(("before_training_exp", kwargs))

        def before_backward(self, strategy: Any, **kwargs: Any) -> None:
            self.log.append(("before_backward", kwargs))

        def after_eval_exp(self, strategy: Any, **kwargs: Any) -> None:
            self.log.append(("after_eval_exp", kwargs))

    duck = Duck()
    strategy = _strategy([duck])
    bm = _bm()
    strategy.train(bm.train_stream[0], k=1)
    strategy.eval(bm.test_stream, k=2)
    assert duck.log == [
        ("before_training_exp", {"k": 1}),
        ("before_backward", {"k": 1}),
        ("before_backward", {"k": 1}),
        ("after_eval_exp", {"k": 2}),
    ]
