"""MAS: the importance is the mean per-sample |d ||f(x)||^2 / d theta|, written out by hand
for a linear model; accumulated over experiences; the A-GEM authors' variants."""

from __future__ import annotations

import methods_support as ms
import pytest
import torch
from torch import nn

import agem
from agem.plugins import MASPlugin
from agem.plugins.mas import output_norm_importance


def _strategy(m: nn.Module, lam: float = 0.0, **kw: object) -> agem.MAS:
    return agem.MAS(
        m,
        torch.optim.SGD(m.parameters(), lr=ms.LR),
        mas_lambda=lam,
        criterion=ms.HalfSquare(),
        train_mb_size=ms.N,
        evaluator=False,
        seed=0,
        **kw,  # type: ignore[arg-type]
    )


def _hand(
    w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, per_sample: bool = True
) -> torch.Tensor:
    """For f = W x + b: d||f||^2/dW_kj = 2 f_k x_j, d/db_k = 2 f_k; per sample, or summed
    over minibatches of 10 before the magnitude; flat [W00, W01, W10, W11, b0, b1]."""
    rows = []
    for n in range(x.shape[0]):
        f = [float(w[k, 0] * x[n, 0] + w[k, 1] * x[n, 1] + b[k]) for k in range(2)]
        rows.append(
            torch.tensor(
                [
                    *(2 * f[0] * x[n, 0], 2 * f[0] * x[n, 1]),
                    *(2 * f[1] * x[n, 0], 2 * f[1] * x[n, 1]),
                    *(2 * f[0], 2 * f[1]),
                ],
                dtype=torch.float64,
            )
        )
    g = torch.stack(rows)
    if per_sample:
        return g.abs().sum(0) / x.shape[0]
    return sum(g[i : i + 10].sum(0).abs() for i in range(0, x.shape[0], 10)) / x.shape[0]


def test_importance_is_the_hand_computed_mean_per_sample_magnitude() -> None:
    bench, data = ms.data()
    m = ms.model()
    s = _strategy(m)
    s.train(bench.train_stream[0])
    w0, b0 = m.weight.detach().clone(), m.bias.detach().clone()
    first = _hand(w0, b0, data[0][0])
    torch.testing.assert_close(ms.flat(s.mas_plugin.importance), first, rtol=1e-12, atol=0)
    torch.testing.assert_close(ms.flat(s.mas_plugin.anchor), ms.params(m), rtol=0, atol=0)
    s.train(bench.train_stream[1])  # accumulated: Omega_0 + Omega_1
    second = _hand(m.weight.detach(), m.bias.detach(), data[1][0])
    torch.testing.assert_close(ms.flat(s.mas_plugin.importance), first + second, rtol=1e-12, atol=0)


def test_authors_variants_batch_magnitudes_and_last_task_only() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(25, 2, generator=gen, dtype=torch.float64)  # batches of 10, 10, 5
    y = torch.randint(0, 2, (25,), generator=gen)
    from agem.benchmarks import from_tensors

    bench = from_tensors(train=[(x, y), (x, y)], test=[(x, y), (x, y)])
    m = ms.model()
    s = _strategy(m, per_sample=False, accumulate=False)
    s.train(bench.train_stream[0])
    s.train(bench.train_stream[1])
    hand = _hand(m.weight.detach(), m.bias.detach(), x, per_sample=False)
    torch.testing.assert_close(ms.flat(s.mas_plugin.importance), hand, rtol=1e-12, atol=0)
    assert (hand <= _hand(m.weight.detach(), m.bias.detach(), x) + 1e-12).all()


def _loop(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample magnitudes by one backward pass per sample."""
    out = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(x.shape[0]):
        model.zero_grad()
        model(x[i : i + 1]).pow(2).sum().backward()
        for n, p in model.named_parameters():
            out[n] += p.grad.abs()
    return {n: v / x.shape[0] for n, v in out.items()}


@pytest.mark.parametrize("kind", ["linear", "other"])
def test_deep_models_match_a_loop_over_samples(kind: str) -> None:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)]
    if kind == "other":  # a parameter outside Linear layers: the torch.func path
        layers.insert(2, nn.LayerNorm(5))
    model = nn.Sequential(*layers).double()
    x = torch.randn(300, 3, dtype=torch.float64)
    y = torch.zeros(300, dtype=torch.long)
    from agem.benchmarks import from_tensors

    bench = from_tensors(train=[(x, y)], test=[(x, y)])
    s = _strategy(model)
    s.experience = bench.train_stream[0]
    got = output_norm_importance(s, bench.train_stream[0].dataset)
    want = _loop(model, x)
    for n in want:
        torch.testing.assert_close(got[n], want[n], rtol=1e-10, atol=1e-12)


def test_penalty_value_and_state() -> None:
    bench, _ = ms.data()
    m = ms.model()
    lam = 0.3
    s = _strategy(m, lam)
    s.train(bench.train_stream[0])
    imp, anchor = ms.flat(s.mas_plugin.importance), ms.params(m)
    with torch.no_grad():
        m.weight.mul_(1.5)
    d = ms.params(m) - anchor
    value = s.mas_plugin.penalty(m)
    assert value is not None
    torch.testing.assert_close(value, lam * (imp * d * d).sum(), rtol=1e-12, atol=0)
    other = MASPlugin(mas_lambda=lam)
    other.load_state_dict(s.mas_plugin.state_dict())
    assert torch.equal(ms.flat(other.importance), imp)
    with pytest.raises(ValueError, match="mas_lambda"):
        MASPlugin(mas_lambda=1.0).check_state_dict(s.mas_plugin.state_dict())
    with pytest.raises(ValueError, match="mas_lambda"):
        MASPlugin(mas_lambda=-0.1)
