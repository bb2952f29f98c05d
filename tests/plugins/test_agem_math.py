"""A-GEM's arithmetic, checked against a hand computation (the A-GEM paper's update).

Setting: the memory is the whole first experience (patterns_per_experience and
sample_size exceed its size) and experience 2 is one minibatch, so training on
experience 2 is exactly one step: g_ref on the first experience, g on experience 2,
the projection if g.g_ref < 0, and an SGD step. The hand computation uses
`torch.autograd.grad` on a copy of the model, in float64.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import agem
from agem.benchmarks import from_tensors
from agem.models import MultiHeadMLP, MultiTaskModule
from agem.plugins import Plugin
from agem.plugins.agem import SAMPLE_SEED_OFFSET, project

LR = 0.1
Data = tuple[Tensor, Tensor, int]


def _data(seed: int = 0, n: int = 12) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


def _forward(model: nn.Module, x: Tensor, t: int) -> Tensor:
    if isinstance(model, MultiTaskModule):
        return model(x, torch.full((x.shape[0],), t, dtype=torch.long))
    return model(x)


def _trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _grads(model: nn.Module, data: Data) -> tuple[list[Tensor | None], Tensor]:
    """Per-parameter gradients (None where unused) and the flat vector (None as zeros)."""
    x, y, t = data
    params = _trainable(model)
    loss = F.cross_entropy(_forward(model, x, t), y)
    grads = list(torch.autograd.grad(loss, params, allow_unused=True))
    flat = torch.cat(
        [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)]
    )
    return grads, flat


def _flat_params(model: nn.Module) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in _trainable(model)])


class HandStep:
    """One A-GEM step computed by hand from the model before experience 2."""

    def __init__(self, before: nn.Module, memory: Data, current: Data) -> None:
        # g_ref on a copy, so that its BatchNorm statistics do not leak into the step
        _, self.g_ref = _grads(copy.deepcopy(before), memory)
        self.model = copy.deepcopy(before)
        self.current_grads, self.g = _grads(self.model, current)
        self.dot = float(self.g @ self.g_ref)
        g = self.g.clone()
        if self.dot < 0:
            g = g - (self.g @ self.g_ref) / (self.g_ref @ self.g_ref) * self.g_ref
        self.g_tilde = g
        self.expected = _flat_params(before) - LR * g  # SGD step
        self.unprojected = _flat_params(before) - LR * self.g
        # Expected buffers (BatchNorm): only the current minibatch's forward counts.
        self.buffers = {k: v.clone() for k, v in self.model.named_buffers()}


def _train_two(
    model: nn.Module, exp1: Data, exp2: Data, plugins: list[Plugin] | None = None
) -> tuple[agem.AGEM, nn.Module]:
    """Train experience 1 (3 steps), then experience 2 (1 step); return the model before 2."""
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    strategy = agem.AGEM(
        model,
        opt,
        patterns_per_experience=1000,
        sample_size=1000,
        train_mb_size=len(exp2[1]),
        evaluator=False,
        seed=0,
        plugins=plugins,
    )
    bm = from_tensors(train=[exp1, exp2], test=[exp1, exp2])
    strategy.train(bm.train_stream[0])
    assert strategy.agem_plugin.memory_size == len(exp1[1])  # the whole first experience
    before = copy.deepcopy(model)
    strategy.train(bm.train_stream[1])
    return strategy, before


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return agem.models.MLP(5, (8,), 3).double()


def _conflicting() -> tuple[Data, Data]:
    # The old task says class 0, the new one says class 1 on the same inputs.
    x, _ = _data()
    zeros = torch.zeros(12, dtype=torch.long)
    return (x, zeros, 0), (x[:4], zeros[:4] + 1, 0)


def _agreeing() -> tuple[Data, Data]:
    x, y = _data()
    return (x, y, 0), (x[:4], y[:4], 0)  # a part of experience 1 again


def test_projection_when_gradients_conflict() -> None:
    exp1, exp2 = _conflicting()
    model = _mlp()
    _, before = _train_two(model, exp1, exp2)
    hand = HandStep(before, exp1, exp2)
    assert hand.dot < 0, "the data must make g.g_ref negative"
    torch.testing.assert_close(_flat_params(model), hand.expected, rtol=0, atol=1e-9)
    # the projection made a difference that the tolerance can see
    assert (hand.expected - hand.unprojected).abs().max() > 1e-3
    # the projected gradient is orthogonal to g_ref
    assert abs(float(hand.g_tilde @ hand.g_ref)) < 1e-10


def test_no_projection_when_gradients_agree() -> None:
    exp1, exp2 = _agreeing()
    model = _mlp()
    _, before = _train_two(model, exp1, exp2)
    hand = HandStep(before, exp1, exp2)
    assert hand.dot >= 0, "the data must make g.g_ref non-negative"
    torch.testing.assert_close(_flat_params(model), hand.expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(hand.expected, hand.unprojected, rtol=0, atol=0)


def test_float32_step_matches_to_1e_6() -> None:
    exp1, exp2 = _conflicting()
    exp1 = (exp1[0].float(), exp1[1], 0)
    exp2 = (exp2[0].float(), exp2[1], 0)
    torch.manual_seed(0)
    model = agem.models.MLP(5, (8,), 3)
    _, before = _train_two(model, exp1, exp2)
    hand = HandStep(before.double(), (exp1[0].double(), exp1[1], 0), (exp2[0].double(), *exp2[1:]))
    assert hand.dot < 0
    torch.testing.assert_close(_flat_params(model).double(), hand.expected, rtol=0, atol=1e-6)


def test_zero_reference_gradient_leaves_g_unchanged() -> None:
    # Without biases, all-zero memory inputs give zero logits and exactly zero gradients.
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(5, 8, bias=False), nn.Tanh(), nn.Linear(8, 3, bias=False)
    ).double()
    x, y = _data()
    exp1: Data = (torch.zeros(12, 5, dtype=torch.float64), y, 0)
    exp2: Data = (x[:4], y[:4], 0)
    strategy, before = _train_two(model, exp1, exp2)
    hand = HandStep(before, exp1, exp2)
    assert float(hand.g_ref.abs().max()) == 0.0
    flat = _flat_params(model)
    assert torch.isfinite(flat).all()
    torch.testing.assert_close(flat, hand.unprojected, rtol=0, atol=1e-12)
    assert torch.isfinite(strategy.agem_plugin._grads.g).all()  # type: ignore[union-attr]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_project_function(dtype: torch.dtype) -> None:
    g = torch.tensor([1.0, -2.0, 0.5], dtype=dtype)
    # conflicting: g.g_ref = -3 < 0
    g_ref = torch.tensor([1.0, 1.0, -2.0], dtype=dtype)
    out = g.clone()
    project(out, g_ref.clone())
    expected = g - (g @ g_ref) / (g_ref @ g_ref) * g_ref
    assert torch.equal(out, expected)  # bit-identical to the textbook formula
    assert abs(float(out @ g_ref)) < 1e-6
    # agreeing and orthogonal: unchanged
    for ref in ([1.0, -1.0, 0.0], [2.0, 1.0, 0.0]):
        out = g.clone()
        project(out, torch.tensor(ref, dtype=dtype))
        assert torch.equal(out, g)
    # zero reference gradient: unchanged, no NaN
    out = g.clone()
    project(out, torch.zeros(3, dtype=dtype))
    assert torch.equal(out, g)
    # a tiny conflicting g_ref whose square underflows: still finite
    out = g.clone()
    project(out, torch.tensor([-1e-30, 0.0, 0.0], dtype=dtype))
    assert torch.isfinite(out).all()


class RoutedTwoHead(MultiTaskModule):
    """Body plus one head per task; only the heads of the batch's tasks enter the graph."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 8), nn.Tanh())
        self.heads = nn.ModuleList([nn.Linear(8, 3), nn.Linear(8, 3)])

    def forward(self, x: Tensor, task_labels: Tensor) -> Tensor:
        h = self.body(x)
        out = torch.zeros(x.shape[0], 3, dtype=h.dtype)
        for t in torch.unique(task_labels).tolist():
            mask = task_labels == t
            out = out.index_put((mask,), self.heads[int(t)](h[mask]))
        return out


def _multihead_mlp() -> nn.Module:
    model = MultiHeadMLP(5, (8,), 3).double()
    model.classifier.adaptation([1])  # the second head exists before the optimizer
    return model


def _routed() -> nn.Module:
    return RoutedTwoHead().double()


def _old_head(model: nn.Module) -> list[nn.Parameter]:
    if isinstance(model, RoutedTwoHead):
        return list(model.heads[0].parameters())
    return list(model.classifier.heads["0"].parameters())  # type: ignore[index, union-attr]


def _new_head(model: nn.Module) -> list[nn.Parameter]:
    if isinstance(model, RoutedTwoHead):
        return list(model.heads[1].parameters())
    return list(model.classifier.heads["1"].parameters())  # type: ignore[index, union-attr]


class CopyHead(Plugin):
    """Before experience 2, make the new head a copy of the old one (so tasks conflict)."""

    def before_training_exp(self, strategy: agem.BaseTemplate, **kwargs: object) -> None:
        if strategy.clock.train_exp_counter == 1:
            with torch.no_grad():
                for new, old in zip(_new_head(strategy.model), _old_head(strategy.model)):
                    new.copy_(old)


@pytest.mark.parametrize("make", [_routed, _multihead_mlp], ids=["routed", "MultiHeadMLP"])
def test_two_heads_old_head_moves_by_projection(make: Callable[[], nn.Module]) -> None:
    torch.manual_seed(0)
    model = make()
    (x, y, _), (x2, y2, _) = _conflicting()
    exp1: Data = (x, y, 0)
    exp2: Data = (x2, y2, 1)
    _, before = _train_two(model, exp1, exp2, plugins=[CopyHead()])
    with torch.no_grad():  # what CopyHead did at the start of experience 2
        for new, old in zip(_new_head(before), _old_head(before)):
            new.copy_(old)
    hand = HandStep(before, exp1, exp2)
    assert hand.dot < 0, "the data must make g.g_ref negative"
    params = _trainable(before)
    old_ids = {id(p) for p in _old_head(before)}
    old_grads = [g for g, p in zip(hand.current_grads, params) if id(p) in old_ids]
    if make is _routed:
        assert all(g is None for g in old_grads)  # the current loss does not reach head 0
    torch.testing.assert_close(_flat_params(model), hand.expected, rtol=0, atol=1e-9)
    # head 0 moved, and by exactly the projected component -lr * (-(g.g_ref/|g_ref|^2) g_ref)
    for p_after, p_before in zip(_old_head(model), _old_head(before)):
        assert (p_after - p_before).abs().max() > 1e-4


class StatsSpy(Plugin):
    """Records BatchNorm running statistics in `before_training_iteration`."""

    def __init__(self, order: int) -> None:
        self.order = order
        self.seen: list[list[Tensor]] = []

    def before_training_iteration(self, strategy: agem.BaseTemplate, **kwargs: object) -> None:
        self.seen.append([b.clone() for b in strategy.model.buffers()])


def _bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).double()


def test_batchnorm_stats_unchanged_by_memory_pass() -> None:
    exp1, exp2 = _conflicting()
    first, last = StatsSpy(order=-10), StatsSpy(order=10)  # around the A-GEM plugin (order 0)
    model = _bn_model()
    _, before = _train_two(model, exp1, exp2, plugins=[first, last])
    assert len(first.seen) == len(last.seen) == 4  # 3 steps on experience 1, 1 on 2
    for a, b in zip(first.seen, last.seen):
        for x, y in zip(a, b):
            assert torch.equal(x, y)
    # the statistics do move during a step (so the comparison above can fail)
    assert not torch.equal(first.seen[-1][0], dict(model.named_buffers())["1.running_mean"])
    # and the whole step matches the hand computation, buffers included
    hand = HandStep(before, exp1, exp2)
    torch.testing.assert_close(_flat_params(model), hand.expected, rtol=0, atol=1e-9)
    for name, value in model.named_buffers():
        torch.testing.assert_close(value, hand.buffers[name], rtol=0, atol=1e-12)


def test_frozen_parameters_are_ignored() -> None:
    model = _mlp()
    frozen = model.features[1].bias  # type: ignore[index]
    frozen.requires_grad_(False)
    exp1, exp2 = _conflicting()
    frozen_before = frozen.detach().clone()
    strategy, before = _train_two(model, exp1, exp2)
    assert torch.equal(frozen, frozen_before)
    assert frozen.grad is None
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    grads = strategy.agem_plugin._grads
    assert grads is not None and grads.g.numel() == grads.g_ref.numel() == n_trainable
    hand = HandStep(before, exp1, exp2)
    assert hand.dot < 0
    torch.testing.assert_close(_flat_params(model), hand.expected, rtol=0, atol=1e-9)


def test_gradients_are_views_of_one_flat_buffer() -> None:
    exp1, exp2 = _conflicting()
    model = _mlp()
    strategy, _ = _train_two(model, exp1, exp2)
    grads = strategy.agem_plugin._grads
    assert grads is not None
    base = grads.g.data_ptr()
    end = base + grads.g.numel() * grads.g.element_size()
    for p in model.parameters():
        assert p.grad is not None and base <= p.grad.data_ptr() < end


def _reference_loop(
    model: nn.Module, data: list[tuple[Tensor, Tensor]], *, seed: int, ppe: int, k: int, bs: int
) -> None:
    """The textbook A-GEM loop, with the same random streams as `agem.AGEM(seed=seed)`."""
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=LR)
    shuffle = torch.Generator().manual_seed(seed)
    pick = torch.Generator().manual_seed(seed)
    sample = torch.Generator().manual_seed(seed + SAMPLE_SEED_OFFSET)
    mem_x: Tensor | None = None
    mem_y: Tensor | None = None
    for x, y in data:
        perm = torch.randperm(len(y), generator=shuffle)
        xs, ys = x[perm], y[perm]
        for i in range(0, len(y), bs):
            g_ref = None
            if mem_x is not None and mem_y is not None:
                rx, ry = mem_x, mem_y  # the whole memory when it holds at most k
                if len(mem_y) > k:
                    idx = torch.randperm(len(mem_y), generator=sample)[:k]
                    rx, ry = mem_x[idx], mem_y[idx]
                opt.zero_grad()
                F.cross_entropy(model(rx), ry).backward()
                g_ref = torch.cat([p.grad.reshape(-1) for p in params])  # type: ignore[union-attr]
            opt.zero_grad()
            F.cross_entropy(model(xs[i : i + bs]), ys[i : i + bs]).backward()
            if g_ref is not None:
                g = torch.cat([p.grad.reshape(-1) for p in params])  # type: ignore[union-attr]
                if g @ g_ref < 0:
                    g = g - (g @ g_ref) / (g_ref @ g_ref) * g_ref
                    offset = 0
                    for p in params:
                        p.grad.copy_(g[offset : offset + p.numel()].view_as(p))  # type: ignore[union-attr]
                        offset += p.numel()
            opt.step()
        sel = torch.randperm(len(y), generator=pick)[:ppe]
        mem_x = x[sel] if mem_x is None else torch.cat([mem_x, x[sel]])
        mem_y = y[sel] if mem_y is None else torch.cat([mem_y, y[sel]])


def test_matches_the_textbook_loop_bit_for_bit() -> None:
    """Several experiences with a random memory sample (sample_size < memory size)."""
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(60, 6, generator=g), torch.randint(0, 3, (60,), generator=g))]
    data += [(x[:, torch.randperm(6, generator=g)], y) for x, y in data * 3]
    torch.manual_seed(0)
    library = agem.models.MLP(6, (16,), 3)
    reference = copy.deepcopy(library)
    strategy = agem.AGEM(
        library,
        torch.optim.SGD(library.parameters(), lr=LR),
        patterns_per_experience=20,
        sample_size=25,
        train_mb_size=10,
        evaluator=False,
        seed=7,
    )
    bm = from_tensors(train=data, test=data)
    for exp in bm.train_stream:
        strategy.train(exp)
    _reference_loop(reference, data, seed=7, ppe=20, k=25, bs=10)
    for a, b in zip(library.parameters(), reference.parameters()):
        assert torch.equal(a, b)
    # not vacuous: the projections changed the trajectory compared with fine-tuning
    torch.manual_seed(0)
    plain = agem.models.MLP(6, (16,), 3)
    naive = agem.Naive(
        plain, torch.optim.SGD(plain.parameters(), lr=LR), train_mb_size=10, evaluator=False, seed=7
    )
    for exp in bm.train_stream:
        naive.train(exp)
    assert any(not torch.equal(a, b) for a, b in zip(library.parameters(), plain.parameters()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tiny_conflicting_reference_gradient_is_projected(dtype: torch.dtype) -> None:
    # g_ref.g_ref is below float32's smallest normal number but not zero: still projected
    g = torch.tensor([1.0, -2.0, 0.5], dtype=dtype)
    g_ref = torch.tensor([-3e-21, 0.0, 0.0], dtype=dtype)
    assert 0 < float(g_ref @ g_ref) < torch.finfo(torch.float32).tiny
    out = g.clone()
    project(out, g_ref.clone())
    assert torch.isfinite(out).all()
    cos = float(out @ g_ref) / (float(out.norm()) * 3e-21)
    assert abs(cos) < 1e-3  # no longer conflicting
    torch.testing.assert_close(out[1:], g[1:], rtol=0, atol=0)


class _SetTrainable(Plugin):
    """Sets `requires_grad` of `param` at the start of iteration `at` of experience 2."""

    def __init__(self, param: nn.Parameter, at: int, value: bool) -> None:
        self.param, self.at, self.value = param, at, value
        self.snapshot: Tensor | None = None

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        if strategy.clock.train_exp_counter == 1 and strategy.clock.train_exp_iterations == self.at:
            self.param.requires_grad_(self.value)
            self.snapshot = self.param.detach().clone()


def _train_momentum(model: nn.Module, plugin: Plugin) -> agem.AGEM:
    x, y = _data(n=40)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=0.1)
    strategy = agem.AGEM(
        model, opt, patterns_per_experience=20, sample_size=8, train_mb_size=4,
        evaluator=False, seed=0, plugins=[plugin],
    )  # fmt: skip
    parts = [(x[:20], y[:20], 0), (x[20:], 2 - y[20:], 0)]
    bm = from_tensors(train=parts, test=parts)
    strategy.train(bm.train_stream)
    return strategy


def test_layer_frozen_mid_experience_stops_moving() -> None:
    model = _mlp()
    frozen = model.features[1].weight  # type: ignore[index]
    plugin = _SetTrainable(frozen, at=2, value=False)
    strategy = _train_momentum(model, plugin)
    assert plugin.snapshot is not None
    assert torch.equal(frozen.detach(), plugin.snapshot)  # momentum and decay no longer apply
    assert frozen.grad is None
    grads = strategy.agem_plugin._grads
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert grads is not None and grads.g.numel() == n_trainable


def test_layer_unfrozen_mid_experience_joins_the_projection() -> None:
    model = _mlp()
    layer = model.features[1].weight  # type: ignore[index]
    layer.requires_grad_(False)
    plugin = _SetTrainable(layer, at=2, value=True)
    strategy = _train_momentum(model, plugin)
    assert plugin.snapshot is not None and not torch.equal(layer.detach(), plugin.snapshot)
    grads = strategy.agem_plugin._grads
    assert grads is not None
    assert grads.g.numel() == sum(p.numel() for p in model.parameters())
    assert any(p is layer for p in grads.params)
    # its gradient is a view of the flat buffer, so the projection covers it
    assert layer.grad is not None
    start = grads.g.data_ptr()
    end = start + grads.g.numel() * grads.g.element_size()
    assert start <= layer.grad.data_ptr() < end
