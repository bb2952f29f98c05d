"""strategy.state_dict() / load_state_dict(): a restored strategy continues exactly like the
original (model, optimizer, clock, shuffling RNG, global RNG, plugin state, grown heads)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import agem
from agem.benchmarks import from_tensors
from agem.models import MLP, MultiHeadMLP
from agem.plugins import Plugin


class LossScaler(Plugin):
    """A plugin whose state changes the updates: the loss is scaled by its step count."""

    def __init__(self) -> None:
        self.steps = 0

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        strategy.loss = strategy.loss * (1.0 + 0.05 * self.steps)

    def after_update(self, strategy: Any, **kwargs: Any) -> None:
        self.steps += 1

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = state["steps"]


def _bm(task_labels: bool) -> agem.benchmarks.Benchmark:
    g = torch.Generator().manual_seed(0)

    def exp(i: int) -> tuple[Any, ...]:
        x, y = torch.randn(10, 6, generator=g), torch.randint(0, 3, (10,), generator=g)
        return (x, y, i) if task_labels else (x, y)

    return from_tensors(train=[exp(i) for i in range(3)], test=[exp(i) for i in range(3)])


def _strategy(
    make_model: Callable[[], nn.Module], make_opt: Callable[[Any], torch.optim.Optimizer], seed: int
) -> agem.Naive:
    model = make_model()
    return agem.Naive(
        model,
        make_opt(model.parameters()),
        train_mb_size=4,
        train_epochs=2,
        eval_mb_size=8,
        plugins=[LossScaler()],
        seed=seed,
    )


def _roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    """Through bytes, as a user would save it (and so the live tensors cannot leak)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _check_resume(
    make_model: Callable[[], nn.Module],
    make_opt: Callable[[Any], torch.optim.Optimizer],
    bm: agem.benchmarks.Benchmark,
    n_before: int,
) -> tuple[agem.Naive, agem.Naive]:
    torch.manual_seed(0)
    original = _strategy(make_model, make_opt, seed=0)
    for exp in bm.train_stream[:n_before]:
        original.train(exp)
        original.eval(bm.test_stream)
    checkpoint = _roundtrip(original.state_dict())
    # continue the original straight away
    for exp in bm.train_stream[n_before:]:
        original.train(exp)
        original.eval(bm.test_stream)
    # a fresh strategy: different initial weights, different seed, fresh plugin
    torch.manual_seed(1234)
    restored = _strategy(make_model, make_opt, seed=99)
    restored.load_state_dict(checkpoint)
    for exp in bm.train_stream[n_before:]:
        restored.train(exp)
        restored.eval(bm.test_stream)

    a, b = dict(original.model.named_parameters()), dict(restored.model.named_parameters())
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert original.clock == restored.clock
    assert original.plugins[0].steps == restored.plugins[0].steps > 0
    assert original.evaluator.accuracy_matrix() == restored.evaluator.accuracy_matrix()
    assert len(original.evaluator.accuracy_matrix()) == 3
    assert torch.equal(original.generator.get_state(), restored.generator.get_state())
    return original, restored


def test_resume_single_head_with_dropout_and_momentum() -> None:
    _check_resume(
        lambda: MLP(6, (8,), 3, dropout=0.3),  # dropout: the global RNG must be restored
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        _bm(task_labels=False),
        n_before=1,
    )


def test_resume_multi_head_with_heads_grown_during_training() -> None:
    original, restored = _check_resume(
        lambda: MultiHeadMLP(6, (8,), 3, dropout=0.3),
        lambda p: torch.optim.Adam(p, lr=0.01),
        _bm(task_labels=True),
        n_before=2,  # heads 1 (training) and 2 (evaluation) exist at the checkpoint
    )
    assert restored.model.classifier.task_labels == [0, 1, 2]
    groups_a = [len(g["params"]) for g in original.optimizer.param_groups]
    groups_b = [len(g["params"]) for g in restored.optimizer.param_groups]
    assert groups_a == groups_b


def test_load_rejects_a_mismatched_strategy() -> None:
    bm = _bm(task_labels=True)
    torch.manual_seed(0)
    source = _strategy(lambda: MultiHeadMLP(6, (8,), 3), lambda p: torch.optim.SGD(p, lr=0.1), 0)
    source.train(bm.train_stream[0])
    state = source.state_dict()

    model = MultiHeadMLP(6, (8,), 3)
    no_plugin = agem.Naive(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="checkpoint plugins"):
        no_plugin.load_state_dict(state)

    plain = _strategy(lambda: MLP(6, (8,), 3), lambda p: torch.optim.SGD(p, lr=0.1), 0)
    with pytest.raises(ValueError, match="task heads for 'classifier'"):
        plain.load_state_dict(state)


def _agem(ppe: int, seed: int = 0) -> agem.AGEM:
    torch.manual_seed(seed)
    model = MLP(6, (8,), 3)
    return agem.AGEM(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        patterns_per_experience=ppe,
        sample_size=4,
        train_mb_size=4,
        seed=seed,
    )


def _snapshot(strategy: Any) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    params = {k: v.detach().clone() for k, v in strategy.model.state_dict().items()}
    return params, torch.get_rng_state(), strategy.generator.get_state()


def _unchanged(strategy: Any, before: tuple[Any, ...]) -> None:
    params, rng, gen = before
    for k, v in strategy.model.state_dict().items():
        assert torch.equal(v, params[k]), k
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(strategy.generator.get_state(), gen)


def test_an_agem_checkpoint_is_refused_by_replay_before_anything_changes() -> None:
    bm = _bm(task_labels=False)
    source = _agem(10)
    source.train(bm.train_stream[0])
    state = _roundtrip(source.state_dict())
    torch.manual_seed(7)
    model = MLP(6, (8,), 3)
    replay = agem.Replay(model, torch.optim.SGD(model.parameters(), lr=0.1), mem_size=10)
    before = _snapshot(replay)
    with pytest.raises(ValueError, match="AGEM strategy, not of a Replay"):
        replay.load_state_dict(state)
    _unchanged(replay, before)


def test_an_agem_memory_of_another_size_is_refused_before_anything_changes() -> None:
    bm = _bm(task_labels=False)
    source = _agem(100)  # stores every pattern of the 10-pattern experiences
    source.train(bm.train_stream[0])
    source.train(bm.train_stream[1])
    state = _roundtrip(source.state_dict())
    target = _agem(5, seed=3)
    before = _snapshot(target)
    with pytest.raises(ValueError, match="patterns_per_experience=100"):
        target.load_state_dict(state)
    _unchanged(target, before)
    assert target.agem_plugin.memory_x is None
    # without the recorded settings, the memory sizes alone give it away
    del state["plugins"][next(k for k in state["plugins"] if "AGEMPlugin" in k)]["settings"]
    with pytest.raises(ValueError, match="holds up to 10 patterns per experience"):
        target.load_state_dict(state)
    _unchanged(target, before)


def test_an_optimizer_of_another_kind_is_refused_before_anything_changes() -> None:
    bm = _bm(task_labels=False)
    source = _strategy(lambda: MLP(6, (8,), 3), lambda p: torch.optim.Adam(p, lr=0.01), 0)
    source.train(bm.train_stream[0])
    state = _roundtrip(source.state_dict())
    target = _strategy(lambda: MLP(6, (8,), 3), lambda p: torch.optim.SGD(p, lr=0.1), 5)
    before = _snapshot(target)
    with pytest.raises(ValueError, match="optimizer is of another kind"):
        target.load_state_dict(state)
    _unchanged(target, before)


def test_a_model_of_another_shape_is_refused_before_heads_grow() -> None:
    bm = _bm(task_labels=True)
    source = _strategy(lambda: MultiHeadMLP(6, (8,), 3), lambda p: torch.optim.SGD(p, lr=0.1), 0)
    source.train(bm.train_stream[0])
    source.train(bm.train_stream[1])
    state = _roundtrip(source.state_dict())
    target = _strategy(lambda: MultiHeadMLP(6, (16,), 3), lambda p: torch.optim.SGD(p, lr=0.1), 0)
    before = _snapshot(target)
    with pytest.raises(ValueError, match="has shape"):
        target.load_state_dict(state)
    _unchanged(target, before)
    assert target.model.classifier.task_labels == [0]
    assert len(target.optimizer.param_groups) == 1
