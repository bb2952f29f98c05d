"""The A-GEM authors' EWC (ewc_mode "running"): one running Fisher of squared minibatch
gradients, normalised to [0, 1], anchored at the last experience's weights; hand-checked,
and stable at their lr 0.03 and lambda 10 over a long permuted stream."""

from __future__ import annotations

import methods_support as ms
import pytest
import torch

import agem
from agem.plugins import RunningEWCPlugin

STEPS, ALPHA, EVERY = 5, 0.9, 2


def _hand_fisher(steps: list[ms.Step], fisher: torch.Tensor) -> torch.Tensor:
    for start in range(0, len(steps), EVERY):
        window = steps[start : start + EVERY]
        fisher = (1 - ALPHA) * fisher + ALPHA * sum(s.g * s.g for s in window) / len(window)
    return fisher


def test_running_fisher_and_penalty_match_the_hand_computation() -> None:
    lam = 10.0
    bench, data = ms.data()
    m = ms.model()
    s = agem.EWC(
        m,
        torch.optim.SGD(m.parameters(), lr=ms.LR),
        ewc_lambda=lam,
        mode="running",
        criterion=ms.HalfSquare(),
        train_mb_size=ms.N,
        train_epochs=STEPS,
        evaluator=False,
        seed=0,
    )
    plugin = s.ewc_plugin
    assert isinstance(plugin, RunningEWCPlugin)
    plugin.running.every = EVERY
    theta0 = ms.params(m)
    s.train(bench.train_stream[0])
    steps0 = ms.sgd(theta0, *data[0], STEPS)
    f0 = _hand_fisher(steps0, torch.zeros(6, dtype=torch.float64))
    end0 = steps0[-1].after
    torch.testing.assert_close(ms.flat(plugin.fisher), f0, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ms.flat(plugin.importance), ms.min_max(f0), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ms.flat(plugin.anchor), end0, rtol=1e-12, atol=1e-15)
    assert float(ms.flat(plugin.importance).max()) == pytest.approx(1.0)

    s.train(bench.train_stream[1])  # the penalty: lambda sum F^ (theta - theta*)^2, no 1/2
    steps1 = ms.sgd(end0, *data[1], STEPS, lam=lam, omega=ms.min_max(f0), anchor=end0)
    f1 = _hand_fisher(steps1, f0)  # the running Fisher continues over experiences
    torch.testing.assert_close(ms.params(m), steps1[-1].after, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ms.flat(plugin.fisher), f1, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ms.flat(plugin.importance), ms.min_max(f1), rtol=1e-12, atol=1e-15)


def test_decay_factor_is_refused_in_running_mode() -> None:
    m = ms.model()
    with pytest.raises(ValueError, match="decay_factor"):
        agem.EWC(
            m,
            torch.optim.SGD(m.parameters(), lr=0.1),
            ewc_lambda=1.0,
            mode="running",
            decay_factor=0.5,
        )


def test_state_is_checked_against_the_settings() -> None:
    bench, _ = ms.data()
    m = ms.model()
    s = agem.EWC(
        m,
        torch.optim.SGD(m.parameters(), lr=0.1),
        ewc_lambda=10.0,
        mode="running",
        criterion=ms.HalfSquare(),
        train_mb_size=4,
        evaluator=False,
        seed=0,
    )
    s.train(bench.train_stream[0])
    state = s.ewc_plugin.state_dict()
    other = RunningEWCPlugin(ewc_lambda=10.0)
    other.load_state_dict(state)
    assert all(torch.equal(other.fisher[n], v) for n, v in s.ewc_plugin.fisher.items())  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="ewc_lambda"):
        RunningEWCPlugin(ewc_lambda=1.0).check_state_dict(state)


def test_the_papers_settings_complete_on_a_long_permuted_stream() -> None:
    """lr 0.03, lambda 10, minibatches of 10, over 20 permuted experiences: finite
    parameters throughout, and the last experience is learned (no divergence)."""
    from agem.benchmarks.registry import get

    bench = get("permuted_digits").build(
        n_experiences=20,
        seed=0,
        task_labels=False,
        data_dir=None,
        download=False,
        train_subset=None,
    )
    torch.manual_seed(0)
    x = bench.train_stream[0].dataset[0][0]
    m = agem.models.MLP(int(x.numel()), (64, 64), 10)
    s = agem.EWC(
        m,
        torch.optim.SGD(m.parameters(), lr=0.03),
        ewc_lambda=10.0,
        mode="running",
        train_mb_size=10,
        evaluator=False,
        seed=0,
    )
    for exp in bench.train_stream:
        s.train(exp)
        assert all(torch.isfinite(p).all() for p in m.parameters())
    assert _accuracy(m, bench.test_stream[-1]) > 0.5
    assert float(max(v.max() for v in s.ewc_plugin.importance.values())) <= 1.0  # type: ignore[union-attr]


def _accuracy(m: torch.nn.Module, exp: agem.benchmarks.streams.Experience) -> float:
    data = exp.dataset
    with torch.no_grad():
        pred = m(data.x if data.transform is None else data.transform(data.x)).argmax(1)  # type: ignore[attr-defined]
    return float((pred == data.y).float().mean())  # type: ignore[attr-defined]
