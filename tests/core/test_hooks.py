"""The template fires every hook of the documented callback order, in order, with the
caller's kwargs."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import agem
from agem.benchmarks import from_tensors
from agem.plugins import Plugin

# Written out from docs/ARCHITECTURE.md, independently of agem.core.hooks.
DOC_TRAIN_HOOKS = [
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
]
DOC_EVAL_HOOKS = [
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


class Recorder(Plugin):
    """Records (hook, kwargs, grad mode, clock) for every documented hook."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], bool, tuple[int, ...]]] = []

    @property
    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


def _recording_hook(name: str) -> Any:
    def hook(self: Recorder, strategy: Any, **kwargs: Any) -> None:
        c = strategy.clock
        clock = (c.train_exp_counter, c.train_exp_epochs, c.train_epoch_iterations)
        self.calls.append((name, dict(kwargs), torch.is_grad_enabled(), clock))

    return hook


for _name in DOC_TRAIN_HOOKS + DOC_EVAL_HOOKS:
    setattr(Recorder, _name, _recording_hook(_name))


def _benchmark() -> agem.benchmarks.Benchmark:
    g = torch.Generator().manual_seed(0)

    def exp(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(n, 3, generator=g), torch.randint(0, 2, (n,), generator=g)

    # 6 train samples / batch 2 = 3 minibatches; 5 test samples / batch 2 = 3 (last partial)
    return from_tensors(train=[exp(6), exp(6)], test=[exp(5), exp(5)])


def _strategy(plugins: list[Any]) -> agem.Naive:
    model = nn.Linear(3, 2)
    return agem.Naive(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=2,
        train_epochs=2,
        eval_mb_size=2,
        plugins=plugins,
        seed=0,
    )


def _expected_train(n_exps: int, n_epochs: int, n_batches: int) -> list[str]:
    iteration = [
        "before_training_iteration",
        "before_forward",
        "after_forward",
        "before_backward",
        "after_backward",
        "before_update",
        "after_update",
        "after_training_iteration",
    ]
    out = ["before_training"]
    for _ in range(n_exps):
        out += [
            "before_train_dataset_adaptation",
            "after_train_dataset_adaptation",
            "before_training_exp",
        ]
        for _ in range(n_epochs):
            out += ["before_training_epoch"]
            out += iteration * n_batches
            out += ["after_training_epoch"]
        out += ["after_training_exp"]
    out += ["after_training"]
    return out


def _expected_eval(n_exps: int, n_batches: int) -> list[str]:
    iteration = [
        "before_eval_iteration",
        "before_eval_forward",
        "after_eval_forward",
        "after_eval_iteration",
    ]
    out = ["before_eval"]
    for _ in range(n_exps):
        out += [
            "before_eval_dataset_adaptation",
            "after_eval_dataset_adaptation",
            "before_eval_exp",
        ]
        out += iteration * n_batches
        out += ["after_eval_exp"]
    out += ["after_eval"]
    return out


def test_full_hook_sequence_matches_spec() -> None:
    rec = Recorder()
    bm = _benchmark()
    strategy = _strategy([rec])
    strategy.train(bm.train_stream)
    strategy.eval(bm.test_stream)
    expected = _expected_train(2, 2, 3) + _expected_eval(2, 3)
    assert len(expected) == 1 + 2 * (3 + 2 * (2 + 3 * 8) + 1) + 1 + 1 + 2 * (3 + 3 * 4 + 1) + 1
    assert rec.names == expected
    # every documented hook fired at least once, and nothing else was recorded
    assert set(rec.names) == set(DOC_TRAIN_HOOKS + DOC_EVAL_HOOKS)


def test_train_hooks_run_with_grad_eval_hooks_without() -> None:
    rec = Recorder()
    bm = _benchmark()
    strategy = _strategy([rec])
    strategy.train(bm.train_stream[0])
    strategy.eval(bm.test_stream[0])
    for name, _, grad_enabled, _ in rec.calls:
        assert grad_enabled == (name in DOC_TRAIN_HOOKS), name


def test_clock_counts_what_has_finished() -> None:
    rec = Recorder()
    bm = _benchmark()
    strategy = _strategy([rec])
    strategy.train(bm.train_stream)
    by_hook: dict[str, list[tuple[int, ...]]] = {}
    for name, _, _, clock in rec.calls:
        by_hook.setdefault(name, []).append(clock)
    # (experiences finished, epochs finished on this experience, minibatches in this epoch)
    assert [c[:2] for c in by_hook["before_training_exp"]] == [(0, 0), (1, 0)]
    assert by_hook["before_training_epoch"] == [(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 1, 0)]
    assert by_hook["after_training_exp"] == [(0, 2, 3), (1, 2, 3)]
    assert by_hook["after_training_epoch"] == [(0, 0, 3), (0, 1, 3), (1, 0, 3), (1, 1, 3)]
    assert [c[2] for c in by_hook["before_training_iteration"][:3]] == [0, 1, 2]
    assert strategy.clock.train_iterations == 2 * 2 * 3
    assert strategy.clock.train_exp_counter == 2


def test_kwargs_reach_every_hook() -> None:
    rec = Recorder()
    bm = _benchmark()
    strategy = _strategy([rec])
    strategy.train(bm.train_stream, num_workers=0, tag="train-call")
    n_train = len(rec.calls)
    strategy.eval(bm.test_stream, tag="eval-call", extra=3)
    assert n_train == len(_expected_train(2, 2, 3))
    for name, kwargs, _, _ in rec.calls[:n_train]:
        assert kwargs == {"num_workers": 0, "tag": "train-call"}, name
    for name, kwargs, _, _ in rec.calls[n_train:]:
        assert kwargs == {"tag": "eval-call", "extra": 3}, name


def test_only_overridden_hooks_are_dispatched() -> None:
    """A Plugin subclass that overrides one hook is called for that hook only."""

    class OneHook(Plugin):
        def __init__(self) -> None:
            self.n = 0

        def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
            self.n += 1

    p = OneHook()
    bm = _benchmark()
    strategy = _strategy([p])
    strategy.train(bm.train_stream)
    strategy.eval(bm.test_stream)
    assert p.n == 2


def test_eval_inside_a_training_hook_restores_the_training_state() -> None:
    """An eval() called from a training hook does not disturb the training loop."""
    bm = _benchmark()
    rec = Recorder()

    class EvalEachEpoch(Plugin):
        def __init__(self) -> None:
            self.seen: list[Any] = []

        def after_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
            before = (strategy.experience, strategy.mbatch, strategy.loss, strategy.model.training)
            strategy.eval(bm.test_stream[1])
            after = (strategy.experience, strategy.mbatch, strategy.loss, strategy.model.training)
            same = all(a is b for a, b in zip(before, after, strict=True))
            self.seen.append(same and strategy.is_training)

    strategy = _strategy([EvalEachEpoch(), rec])
    strategy.train(bm.train_stream[0])
    assert strategy.plugins[0].seen == [True, True]
    expected = [
        "before_training",
        "before_train_dataset_adaptation",
        "after_train_dataset_adaptation",
        "before_training_exp",
    ]
    for _ in range(2):
        expected += ["before_training_epoch"]
        expected += _expected_train(1, 1, 3)[5:-3]  # the 3 iterations of one epoch
        expected += _expected_eval(1, 3)  # the nested eval (EvalEachEpoch runs first)
        expected += ["after_training_epoch"]
    expected += ["after_training_exp", "after_training"]
    assert rec.names == expected
