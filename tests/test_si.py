"""SI (path integral): omega, Omega and the penalty against a hand-computed trajectory."""

from __future__ import annotations

import methods_support as ms
import pytest
import torch

import agem
from agem.plugins import SIPlugin

STEPS = 3


def _strategy(lam: float, xi: float, **kw: object) -> tuple[agem.SI, torch.nn.Linear]:
    m = ms.model()
    s = agem.SI(
        m,
        torch.optim.SGD(m.parameters(), lr=ms.LR),
        si_lambda=lam,
        si_xi=xi,
        criterion=ms.HalfSquare(),
        train_mb_size=ms.N,
        train_epochs=STEPS,
        evaluator=False,
        seed=0,
        **kw,  # type: ignore[arg-type]
    )
    return s, m


def _hand_task(steps: list[ms.Step], xi: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(omega / (Delta^2 + xi), theta_end) of one task's trajectory."""
    omega = sum(-s.g * (s.after - s.before) for s in steps)
    delta = steps[-1].after - steps[0].before
    return omega / (delta * delta + xi), steps[-1].after


def test_importance_and_penalty_match_the_hand_computation() -> None:
    lam, xi = 0.7, 0.05
    bench, data = ms.data()
    s, m = _strategy(lam, xi)
    theta0 = ms.params(m)

    s.train(bench.train_stream[0])
    steps0 = ms.sgd(theta0, *data[0], STEPS)
    big0, end0 = _hand_task(steps0, xi)
    plugin = s.si_plugin
    torch.testing.assert_close(ms.flat(plugin.importance), big0, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ms.flat(plugin.anchor), end0, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ms.params(m), end0, rtol=1e-12, atol=1e-15)

    # the second task trains with the penalty; omega uses the task loss's gradient only
    s.train(bench.train_stream[1])
    steps1 = ms.sgd(end0, *data[1], STEPS, lam=lam, omega=big0, anchor=end0)
    big1, end1 = _hand_task(steps1, xi)
    torch.testing.assert_close(ms.params(m), end1, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ms.flat(plugin.importance), big0 + big1, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ms.flat(plugin.anchor), end1, rtol=1e-12, atol=1e-15)

    # the penalty's value: lambda sum Omega (theta - theta*)^2
    with torch.no_grad():
        m.weight.add_(0.3)
        m.bias.sub_(0.2)
    d = ms.params(m) - end1
    value = plugin.penalty(m)
    assert value is not None
    torch.testing.assert_close(value, lam * ((big0 + big1) * d * d).sum(), rtol=1e-12, atol=0)


def test_clip_negative_is_the_authors_variant() -> None:
    xi = 1e-3
    bench, data = ms.data()
    s, m = _strategy(0.0, xi, clip_negative=True)
    steps = ms.sgd(ms.params(m), *data[0], STEPS)
    s.train(bench.train_stream[0])
    big, _ = _hand_task(steps, xi)
    torch.testing.assert_close(
        ms.flat(s.si_plugin.importance), big.clamp_min(0), rtol=1e-12, atol=0
    )


def test_loss_includes_the_penalty_value() -> None:
    bench, _ = ms.data()
    s, m = _strategy(0.5, 0.01)
    s.train(bench.train_stream[0])
    seen: list[tuple[float, float]] = []

    class Probe(agem.plugins.Plugin):
        order = 10

        def before_backward(self, strategy: agem.BaseTemplate, **kwargs: object) -> None:
            assert strategy.loss is not None and strategy.mb_loss is not None
            penalty = s.si_plugin.penalty(strategy.model)
            assert penalty is not None
            seen.append(
                (float(strategy.loss.detach()), float(strategy.mb_loss.detach() + penalty.detach()))
            )

    s.plugins.append(Probe())
    with torch.no_grad():
        m.bias.add_(0.5)
    s.train(bench.train_stream[1])
    assert seen and all(a == pytest.approx(b, rel=1e-12) for a, b in seen)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"si_lambda": -1.0}, "si_lambda"),
        ({"si_xi": 0.0}, "si_xi"),
        ({"si_xi": float("nan")}, "si_xi"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SIPlugin(**kwargs)


def test_state_round_trip_and_settings_check() -> None:
    bench, _ = ms.data()
    s, _ = _strategy(0.5, 0.01)
    s.train(bench.train_stream[0])
    state = s.si_plugin.state_dict()
    other = SIPlugin(si_lambda=0.5, si_xi=0.01)
    other.load_state_dict(state)
    for n in s.si_plugin.importance:
        assert torch.equal(other.importance[n], s.si_plugin.importance[n])
        assert torch.equal(other.anchor[n], s.si_plugin.anchor[n])
    with pytest.raises(ValueError, match="si_xi"):
        SIPlugin(si_lambda=0.5, si_xi=0.02).check_state_dict(state)
