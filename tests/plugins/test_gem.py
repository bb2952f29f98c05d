"""GEM: the projection satisfies every constraint, matches brute-force QPs, skips when
nothing is violated; memory, task labels and BatchNorm statistics."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import agem
from agem.benchmarks import from_tensors, permuted_digits
from agem.plugins import GEMPlugin, Plugin
from agem.plugins.gem import project, solve_dual


def _dual_brute_force(G: np.ndarray, g: np.ndarray, margin: float) -> np.ndarray:
    """Solve min 1/2 v^T P v + c^T v s.t. v >= margin by enumerating free sets (KKT)."""
    P, c = G @ G.T, G @ g
    k = P.shape[0]
    base = np.full(k, margin)
    d = P @ base + c  # in u = v - margin: min 1/2 u^T P u + d^T u, u >= 0
    best = None
    for r in range(k + 1):
        for free in itertools.combinations(range(k), r):
            u = np.zeros(k)
            if free:
                f = list(free)
                u[f] = np.linalg.solve(P[np.ix_(f, f)], -d[f])
            grad = P @ u + d
            if (u >= -1e-12).all() and (grad >= -1e-9).all():
                best = u + base
    assert best is not None
    return best


def _closest_feasible_brute_force(G: np.ndarray, g: np.ndarray) -> np.ndarray:
    """argmin ||z - g|| s.t. G z >= 0, in the primal: the optimum is the projection of g
    onto the null space of its active constraints, so the closest feasible point among the
    projections onto every subset's null space is it."""
    best, best_dist = None, np.inf
    for r in range(G.shape[0] + 1):
        for active in itertools.combinations(range(G.shape[0]), r):
            A = G[list(active)]
            z = g - A.T @ np.linalg.lstsq(A @ A.T, A @ g, rcond=None)[0] if r else g.copy()
            dist = float(np.sum((z - g) ** 2))
            if (G @ z >= -1e-9).all() and dist < best_dist:
                best, best_dist = z, dist
    assert best is not None
    return best


def _conflicting(k: int, p: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    G = torch.randn(k, p, generator=gen, dtype=torch.float64)
    g = -G[0] + 0.3 * torch.randn(p, generator=gen, dtype=torch.float64)
    assert (G @ g < 0).any()
    return G, g


@pytest.mark.parametrize("margin", [0.0, 0.5])
@pytest.mark.parametrize("seed", range(5))
def test_projection_satisfies_every_constraint(margin: float, seed: int) -> None:
    G, g = _conflicting(4, 20, seed)
    new = project(G, g, margin)
    assert (G @ new >= -1e-6).all()


@pytest.mark.parametrize("seed", range(5))
def test_dual_matches_active_set_enumeration(seed: int) -> None:
    G, g = _conflicting(3, 6, seed)
    v = solve_dual(G, g, 0.5).numpy()
    expected = _dual_brute_force(G.numpy(), g.numpy(), 0.5)
    np.testing.assert_allclose(v, expected, atol=1e-6)
    np.testing.assert_allclose(
        project(G, g, 0.5).numpy(), G.numpy().T @ expected + g.numpy(), atol=1e-6
    )


@pytest.mark.parametrize(("k", "p"), [(3, 6), (5, 3)])  # (5, 3): G G^T is singular
def test_zero_margin_is_the_closest_feasible_gradient(k: int, p: int) -> None:
    G, g = _conflicting(k, p, 7)
    closest = _closest_feasible_brute_force(G.numpy(), g.numpy())
    np.testing.assert_allclose(project(G, g, 0.0).numpy(), closest, atol=1e-6)


def test_no_violation_returns_g_unchanged() -> None:
    G = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    g = torch.tensor([0.5, 0.0])
    assert project(G, g, 0.5) is g


class _Recorder(Plugin):
    """Records the flattened gradient at after_backward (before or after GEM's)."""

    def __init__(self, order: int, gem: GEMPlugin) -> None:
        self.order = order
        self.gem = gem
        self.grads: list[torch.Tensor] = []
        self.Gs: list[torch.Tensor] = []

    def after_backward(self, strategy: Any, **kwargs: Any) -> None:
        if self.gem._G is None:
            return
        params = [p for p in strategy.model.parameters() if p.requires_grad]
        self.grads.append(
            torch.cat(
                [
                    (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                    for p in params
                ]
            ).clone()
        )
        self.Gs.append(self.gem._G.clone())


@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_training_projects_only_conflicting_gradients(margin: float) -> None:
    torch.manual_seed(0)
    bm = permuted_digits(3, seed=0)
    model = agem.models.MLP(64, (16,), 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    strategy = agem.GEM(
        model,
        opt,
        patterns_per_experience=40,
        memory_strength=margin,
        train_mb_size=32,
        seed=0,
        evaluator=False,
    )
    before = _Recorder(-1, strategy.gem_plugin)
    after = _Recorder(1, strategy.gem_plugin)
    strategy.plugins = sorted([*strategy.plugins, before, after], key=lambda p: p.order)
    strategy.train(bm.train_stream)
    assert len(before.grads) == len(after.grads) > 0
    violated = 0
    for g, g_new, G in zip(before.grads, after.grads, before.Gs, strict=True):
        assert G.shape[0] in (1, 2)  # one row per past experience
        G64 = G.double()
        if (G64 @ g.double() < 0).any():
            violated += 1
            assert (G64 @ g_new.double() >= -1e-6).all()
        else:
            assert torch.equal(g, g_new)
    assert 0 < violated < len(before.grads)
    assert strategy.gem_plugin.n_solves == violated


def test_memory_per_experience_and_reproducible() -> None:
    def memories(seed: int) -> dict[int, Any]:
        torch.manual_seed(0)
        bm = permuted_digits(2, seed=0)
        model = agem.models.MLP(64, (8,), 10)
        s = agem.GEM(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            patterns_per_experience=25,
            train_mb_size=50,
            seed=seed,
            evaluator=False,
        )
        s.train(bm.train_stream)
        return s.gem_plugin.memories

    a, b, c = memories(0), memories(0), memories(1)
    assert sorted(a) == [0, 1]
    assert all(m[0].shape == (25, 64) and m[1].shape == (25,) for m in a.values())
    assert all(torch.equal(a[k][0], b[k][0]) for k in a)
    assert not torch.equal(a[0][1], c[0][1]) or not torch.equal(a[0][0], c[0][0])


def test_small_experience_stores_everything() -> None:
    x = torch.randn(6, 4)
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    bm = from_tensors(train=[(x, y), (x, y)], test=[(x, y), (x, y)])
    model = agem.models.MLP(4, (8,), 2)
    s = agem.GEM(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        patterns_per_experience=100,
        train_mb_size=3,
        evaluator=False,
    )
    s.train(bm.train_stream[0])
    assert s.gem_plugin.memories[0][0].shape[0] == 6


def test_multihead_memory_gradient_uses_its_task_labels() -> None:
    gen = torch.Generator().manual_seed(0)
    train = [
        (torch.randn(30, 5, generator=gen), torch.randint(0, 2, (30,), generator=gen), t)
        for t in (0, 1)
    ]
    bm = from_tensors(train=train, test=train)
    model = agem.models.MultiHeadMLP(5, (8,), 2)
    s = agem.GEM(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        patterns_per_experience=10,
        train_mb_size=10,
        seed=0,
        evaluator=False,
    )
    s.train(bm.train_stream[0])
    assert torch.equal(s.gem_plugin.memories[0][2], torch.zeros(10, dtype=torch.long))
    s.train(bm.train_stream[1])  # grows head 1
    s.experience = bm.train_stream[1]
    s.gem_plugin.before_training_iteration(s)
    G = s.gem_plugin._G
    assert G is not None and G.shape[0] == 1
    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    offset = 0
    for name, p in zip(names, params, strict=True):
        block = G[0, offset : offset + p.numel()]
        if name.startswith("classifier.heads.1"):
            assert torch.count_nonzero(block) == 0  # experience 0's memory uses head 0
        elif name.startswith("classifier.heads.0"):
            assert torch.count_nonzero(block) > 0
        offset += p.numel()


def test_memory_forward_keeps_batchnorm_statistics() -> None:
    bm = permuted_digits(2, seed=0)
    model = nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    s = agem.GEM(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        patterns_per_experience=30,
        train_mb_size=32,
        seed=0,
        evaluator=False,
    )
    s.train(bm.train_stream[0])
    bn = model[1]
    saved = [b.clone() for b in bn.buffers()]
    s.experience = bm.train_stream[1]
    model.zero_grad(set_to_none=True)  # as the template does before the hook
    s.gem_plugin.before_training_iteration(s)
    assert s.gem_plugin._G is not None
    for old, new in zip(saved, bn.buffers(), strict=True):
        assert torch.equal(old, new)
    assert all(p.grad is None for p in model.parameters())  # nothing left in .grad


def test_options_are_validated_and_plugins_not_mutated() -> None:
    model = agem.models.MLP(4, (4,), 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="patterns_per_experience"):
        agem.GEM(model, opt, patterns_per_experience=0)
    with pytest.raises(ValueError, match="memory_strength"):
        agem.GEM(model, opt, patterns_per_experience=5, memory_strength=-1.0)
    with pytest.raises(ValueError, match="memory_strength"):
        GEMPlugin(5, float("nan"))
    mine: list[Any] = []
    s = agem.GEM(model, opt, patterns_per_experience=5, plugins=mine)
    assert mine == [] and s.gem_plugin in s.plugins


def test_state_dict_round_trip() -> None:
    bm = permuted_digits(2, seed=0)
    model = agem.models.MLP(64, (8,), 10)
    s = agem.GEM(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        patterns_per_experience=20,
        train_mb_size=50,
        seed=0,
    )
    s.train(bm.train_stream[0])
    state = s.state_dict()
    fresh = GEMPlugin(20)
    fresh.load_state_dict(state["plugins"][next(k for k in state["plugins"] if "GEM" in k)])
    assert torch.equal(fresh.memories[0][0], s.gem_plugin.memories[0][0])
