"""A tiny regression problem whose training trajectory is computed by hand, for the
exact tests of the importance-weighted penalties (SI, RWalk, running-Fisher EWC).

The model is `nn.Linear(2, 2)` in float64; the loss is (1/B) sum_n 1/2 (f_0(x_n) - y_n)^2
on the first output only, so its gradient is explicit: for the residual r_n = f_0(x_n) - y_n,
dL/dW_0j = mean_n r_n x_nj, dL/db_0 = mean_n r_n, and zero for the second output's row.
Parameters are handled as one flat vector [W00, W01, W10, W11, b0, b1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from agem.benchmarks import from_tensors
from agem.benchmarks.streams import Benchmark

N = 8
LR = 0.1


class HalfSquare(nn.Module):
    """1/2 (f_0(x) - y)^2, averaged over the minibatch."""

    def forward(self, out: Tensor, y: Tensor) -> Tensor:
        return 0.5 * (out[:, 0] - y.to(out.dtype)).pow(2).mean()


def data(n_exp: int = 2) -> tuple[Benchmark, list[tuple[Tensor, Tensor]]]:
    gen = torch.Generator().manual_seed(3)
    train = []
    for _ in range(n_exp):
        x = torch.randn(N, 2, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 2, (N,), generator=gen)
        train.append((x, y))
    return from_tensors(train=train, test=train), train


def model() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(2, 2).double()


def flat(values: dict[str, Tensor]) -> Tensor:
    """[W00, W01, W10, W11, b0, b1] from a dict by parameter name."""
    return torch.cat([values["weight"].reshape(-1), values["bias"].reshape(-1)])


def params(m: nn.Linear) -> Tensor:
    return flat({"weight": m.weight.detach(), "bias": m.bias.detach()}).clone()


def gradient(theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """The task loss's gradient, written out."""
    r = theta[0] * x[:, 0] + theta[1] * x[:, 1] + theta[4] - y.to(torch.float64)
    g = torch.zeros(6, dtype=torch.float64)
    g[0] = (r * x[:, 0]).mean()
    g[1] = (r * x[:, 1]).mean()
    g[4] = r.mean()
    return g


@dataclass
class Step:
    g: Tensor  # the task loss's gradient
    before: Tensor
    after: Tensor


def sgd(
    theta: Tensor,
    x: Tensor,
    y: Tensor,
    steps: int,
    *,
    lam: float = 0.0,
    omega: Tensor | None = None,
    anchor: Tensor | None = None,
) -> list[Step]:
    """Full-batch SGD steps on lam * sum omega (theta - anchor)^2 plus the task loss."""
    out = []
    for _ in range(steps):
        g = gradient(theta, x, y)
        total = g.clone()
        if omega is not None and anchor is not None:
            total += 2 * lam * omega * (theta - anchor)
        after = theta - LR * total
        out.append(Step(g, theta.clone(), after.clone()))
        theta = after
    return out


def min_max(v: Tensor) -> Tensor:
    return (v - v.min()) / (v.max() - v.min() + 1e-32)
