"""GEM's dual quadratic program, solved on the tensors' device with no host synchronisation.

The dual (Lopez-Paz & Ranzato, 2017) for memory gradients G [K, P] and a gradient g [P] is

    minimise_v  1/2 v^T (G G^T) v + (G g)^T v   subject to  v >= margin,

and the update direction is g~ = G^T v + g. K (one variable per past experience) is
tiny, so the solver works on the K x K Gram matrix only, in float64, batched over any
leading dimensions (a fleet solves one QP per run in one call).

Method: Lawson and Hanson's active-set algorithm for nonnegative least squares, applied
to u = v - margin >= 0, run for a fixed number of iterations with `torch.where` in place
of every branch, so that it can run on a GPU without reading anything back (and be
captured in a CUDA graph). Each iteration either frees the variable whose constraint is
most violated (when the previous solve was feasible) or steps back to the boundary and
fixes the variables that reached it; a problem that has converged stays put (an
iteration with nothing to free and a feasible solve changes nothing). The free set's
linear system is solved by Cholesky factorisation of the matrix with the fixed rows and
columns replaced by the identity.

Conditioning: the Gram matrix is first scaled to a unit diagonal (rows of G with very
different norms become comparable; zero rows are left alone) and given a ridge of
`RIDGE` (1e-9 of the unit diagonal, as the quadprog path's 1e-9 of the mean diagonal),
so that duplicated, collinear or rank-deficient memory gradients still factorise. The
ridge moves the solution by about 1e-9 relative: the constraints G g~ >= 0 then hold to
about 1e-9 |g.g_k|.

Iterations: Lawson-Hanson frees one variable per iteration and needs at least as many
iterations as the solution has free variables (at most K); each step back removes at
least one. `default_iterations(K) = 2 K + 4` leaves room for K frees, K steps back and
a margin; on the adversarial problems of the tests (K up to 19: collinear, duplicated,
rank-deficient and wildly scaled rows) the result agrees with quadprog to 1e-6 relative
on g~ (the tests pin 1e-5), and more iterations change nothing once converged.
"""

from __future__ import annotations

import torch
from torch import Tensor

RIDGE = 1e-9


def default_iterations(k: int) -> int:
    """The fixed iteration count used for K constraints (see the module docstring)."""
    return 2 * k + 4


def solve_dual_batched(
    gram: Tensor, q: Tensor, margin: float, *, iterations: int | None = None
) -> Tensor:
    """v [..., K] solving min 1/2 v^T gram v + q^T v s.t. v >= margin, for every leading index.

    `gram` is [..., K, K] (G G^T, symmetric positive semidefinite), `q` is [..., K] (G g).
    Computed in float64 on their device, without host synchronisation; returns float64.
    """
    if gram.dim() < 2 or gram.shape[-1] != gram.shape[-2] or gram.shape[:-1] != q.shape:
        raise ValueError(
            f"solve_dual_batched needs gram [..., K, K] and q [..., K], got "
            f"{tuple(gram.shape)} and {tuple(q.shape)}"
        )
    k = q.shape[-1]
    steps = default_iterations(k) if iterations is None else iterations
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"iterations must be an integer >= 0, got {iterations!r}")
    P = gram.to(torch.float64)
    P = 0.5 * (P + P.transpose(-1, -2))
    q64 = q.to(torch.float64)
    diag = torch.diagonal(P, dim1=-2, dim2=-1)
    # Jacobi scaling u = s * y: a unit diagonal (zero rows keep scale 1).
    s = torch.where(diag > 0, diag.clamp_min(torch.finfo(torch.float64).tiny).rsqrt(), 1.0)
    S = P * s.unsqueeze(-1) * s.unsqueeze(-2)
    eye = torch.eye(k, dtype=torch.float64, device=P.device)
    S = S + RIDGE * eye
    # In u = v - margin >= 0: min 1/2 u^T P u + d^T u with d = P margin 1 + q; scaled by s.
    d = (P.sum(-1) * margin + q64) * s
    y = torch.zeros_like(d)
    free = torch.zeros_like(d, dtype=torch.bool)
    feasible = torch.ones(d.shape[:-1], dtype=torch.bool, device=d.device)
    # A constraint's multiplier must exceed this to be freed: round-off in w = -(S y + d).
    tol = 1e-12 * (1.0 + d.abs().amax(-1, keepdim=True))
    for _ in range(steps):
        w = -(S @ y.unsqueeze(-1)).squeeze(-1) - d
        cand = w.masked_fill(free | (w <= tol), float("-inf"))
        best = cand.amax(-1, keepdim=True)
        add = (cand == best) & (best > float("-inf")) & feasible.unsqueeze(-1)
        add = add & (add.cumsum(-1) == 1)  # one variable (the first on ties)
        free = free | add
        z = _solve_free(S, d, free, eye)
        bad = free & (z <= 0)
        feasible = ~bad.any(-1)
        ratio = torch.where(bad, y / (y - z).clamp_min(1e-300), torch.inf)
        alpha = torch.where(feasible, 1.0, ratio.amin(-1).clamp(0.0, 1.0)).unsqueeze(-1)
        y = y + alpha * (z - y)
        # Variables that reached the boundary while stepping back are fixed at zero.
        drop = free & ~feasible.unsqueeze(-1) & (y <= 1e-14 * (1.0 + y.abs().amax(-1, True)))
        free = free & ~drop
        y = torch.where(free, y.clamp_min(0.0), 0.0)
    return y * s + margin


def _solve_free(S: Tensor, d: Tensor, free: Tensor, eye: Tensor) -> Tensor:
    """z with z_F solving S_FF z_F = -d_F and z = 0 off the free set F, batched."""
    both = free.unsqueeze(-1) & free.unsqueeze(-2)
    A = torch.where(both, S, eye)
    rhs = torch.where(free, -d, 0.0).unsqueeze(-1)
    L, _ = torch.linalg.cholesky_ex(A)
    return torch.where(free, torch.cholesky_solve(rhs, L).squeeze(-1), 0.0)


def project_batched(
    G: Tensor, g: Tensor, margin: float, *, iterations: int | None = None
) -> Tensor:
    """GEM's update direction for G [..., K, P] and g [..., P], without host synchronisation.

    g~ = G^T v + g where some g.g_k < 0 (v from `solve_dual_batched`), else g unchanged
    (selected per leading index by `torch.where`). Returned in g's dtype.
    """
    return project_and_test(G, g, margin, iterations=iterations)[0]


def project_and_test(
    G: Tensor, g: Tensor, margin: float, *, iterations: int | None = None
) -> tuple[Tensor, Tensor]:
    """`project_batched`, and whether some g.g_k < 0 (bool [..., 1], on the device)."""
    if G.dim() < 2 or G.shape[:-2] != g.shape[:-1] or G.shape[-1] != g.shape[-1]:
        raise ValueError(
            f"project_batched needs G [..., K, P] and g [..., P], got "
            f"{tuple(G.shape)} and {tuple(g.shape)}"
        )
    q = (G @ g.unsqueeze(-1)).squeeze(-1)
    violated = (q < 0).any(-1, keepdim=True)
    gram = G @ G.transpose(-1, -2)
    v = solve_dual_batched(gram, q, margin, iterations=iterations)
    new = (v.to(G.dtype).unsqueeze(-2) @ G).squeeze(-2) + g
    return torch.where(violated, new, g), violated
