"""GEM's device QP solver against quadprog: random and adversarial problems, batching,
and no host reads (it runs on meta tensors, which hold no values)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agem.plugins.gem import project
from agem.plugins.gem_qp import default_iterations, project_batched, solve_dual_batched

RTOL = 1e-5  # agreement with quadprog on the projected gradient, relative


def _check(G: torch.Tensor, g: torch.Tensor, margin: float) -> torch.Tensor:
    """The device projection agrees with quadprog and satisfies every constraint."""
    expected = project(G, g, margin)
    got = project_batched(G, g, margin)
    scale = max(float(expected.norm()), float(g.norm()), 1e-300)
    assert float((got - expected).norm()) <= RTOL * scale
    # G g~ >= 0 up to round-off relative to each row's size
    slack = 1e-6 * G.norm(dim=1) * scale  # the ridge: about 1e-7 where G G^T is singular
    assert bool((G @ expected >= -slack).all())
    assert bool((G @ got >= -slack).all())
    return got


def _problem(k: int, p: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    G = torch.randn(k, p, generator=gen, dtype=torch.float64)
    g = -G[0] + 0.5 * torch.randn(p, generator=gen, dtype=torch.float64)
    return G, g


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(1, 19),
    p=st.integers(1, 40),
    seed=st.integers(0, 2**31 - 1),
    margin=st.sampled_from([0.0, 0.5, 2.0]),
)
def test_random_problems_match_quadprog(k: int, p: int, seed: int, margin: float) -> None:
    G, g = _problem(k, p, seed)  # p < k: G G^T is singular
    _check(G, g, margin)


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(2, 19),
    seed=st.integers(0, 2**31 - 1),
    spread=st.floats(0, 8),
    noise=st.sampled_from([0.0, 1e-9, 1e-6, 1e-3]),
    margin=st.sampled_from([0.0, 0.5]),
)
def test_near_degenerate_memories_match_quadprog(
    k: int, seed: int, spread: float, noise: float, margin: float
) -> None:
    """Nearly collinear (or duplicated) memory gradients of norms up to 10^spread apart."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(30, generator=gen, dtype=torch.float64)
    G = base + noise * torch.randn(k, 30, generator=gen, dtype=torch.float64)
    G = G * torch.logspace(-spread / 2, spread / 2, k, dtype=torch.float64)[:, None]
    g = -base + 0.1 * torch.randn(30, generator=gen, dtype=torch.float64)
    _check(G, g, margin)


@pytest.mark.parametrize("margin", [0.0, 0.5])
@pytest.mark.parametrize(
    "case",
    ["duplicated", "rank_deficient", "scales", "opposite", "zero_row", "k1", "k19", "orthogonal"],
)
def test_adversarial_problems_match_quadprog(case: str, margin: float) -> None:
    G, g = _problem(19 if case == "k19" else 5, 40, 3)
    if case == "duplicated":
        G[1] = G[0]
        G[3] = 2.0 * G[2]
    elif case == "rank_deficient":
        G = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        G = G @ torch.randn(2, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        g = -G[1] + 0.1 * G[4]
    elif case == "scales":
        G = G * torch.tensor([1e-4, 1e4, 1.0, 1e-2, 1e2], dtype=torch.float64)[:, None]
    elif case == "opposite":
        g = -3.0 * G[2]
    elif case == "zero_row":
        G[1] = 0.0
    elif case == "k1":
        G = G[:1]
    elif case == "orthogonal":
        G = torch.eye(5, 40, dtype=torch.float64)
        g = -torch.ones(40, dtype=torch.float64)
    _check(G, g, margin)


def test_exactly_opposite_gradient_is_projected_to_zero_without_margin() -> None:
    G, _ = _problem(1, 10, 0)
    got = project_batched(G, -G[0], 0.0)
    assert float(got.norm()) <= 1e-9 * float(G.norm())


def test_no_violation_returns_g_exactly() -> None:
    G, _ = _problem(4, 12, 5)
    g = torch.linalg.pinv(G) @ torch.ones(4, dtype=torch.float64)
    assert bool((G @ g > 0).all())
    assert torch.equal(project_batched(G, g, 0.5), g)
    assert project(G, g, 0.5) is g


def test_batched_over_leading_dimensions_equals_one_by_one() -> None:
    problems = [_problem(6, 25, s) for s in range(6)]
    G = torch.stack([p[0] for p in problems]).reshape(2, 3, 6, 25)
    g = torch.stack([p[1] for p in problems]).reshape(2, 3, 25)
    g[1, 2] = torch.linalg.pinv(G[1, 2]) @ torch.ones(6, dtype=torch.float64)  # no violation
    got = project_batched(G, g, 0.5)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(
                got[i, j], project_batched(G[i, j], g[i, j], 0.5), rtol=0, atol=1e-12
            )
            torch.testing.assert_close(got[i, j], project(G[i, j], g[i, j], 0.5), rtol=1e-6, atol=0)


def test_float32_inputs_keep_their_dtype_and_agree() -> None:
    G, g = _problem(5, 200, 11)
    got = project_batched(G.float(), g.float(), 0.5)
    assert got.dtype == torch.float32
    expected = project(G, g, 0.5)
    assert float((got.double() - expected).norm()) <= 1e-5 * float(expected.norm())


def test_no_host_reads_meta_tensors() -> None:
    """Meta tensors have shapes but no values: any `.item()`, `bool()` or data-dependent
    branch would raise, so the solver reads nothing back from the device."""
    G = torch.empty(4, 3, 19, 50, device="meta")
    g = torch.empty(4, 3, 50, device="meta")
    assert project_batched(G, g, 0.5).shape == (4, 3, 50)
    gram = torch.empty(7, 19, 19, device="meta")
    assert solve_dual_batched(gram, torch.empty(7, 19, device="meta"), 0.0).shape == (7, 19)


def test_more_iterations_change_nothing_once_converged() -> None:
    G, g = _problem(8, 30, 4)
    gram, q = G @ G.T, G @ g
    v = solve_dual_batched(gram, q, 0.5)
    v_more = solve_dual_batched(gram, q, 0.5, iterations=5 * default_iterations(8))
    torch.testing.assert_close(v, v_more, rtol=0, atol=1e-12)
    assert bool((v >= 0.5).all())


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match=r"gram \[..., K, K\]"):
        solve_dual_batched(torch.zeros(3, 4), torch.zeros(3), 0.0)
    with pytest.raises(ValueError, match="iterations"):
        solve_dual_batched(torch.eye(2), torch.zeros(2), 0.0, iterations=-1)
    with pytest.raises(ValueError, match=r"G \[..., K, P\]"):
        project_batched(torch.zeros(2, 5), torch.zeros(4), 0.0)
