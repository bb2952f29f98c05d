"""RWalk: the running Fisher, the path-integral score in the Fisher metric, their
normalisation and the penalty, against a hand-computed trajectory."""

from __future__ import annotations

import methods_support as ms
import pytest
import torch

import agem
from agem.plugins import RWalkPlugin

STEPS, EVERY, ALPHA, XI = 5, 2, 0.6, 1e-3  # windows of 2, 2 and an unfinished 1


def _strategy(lam: float, **kw: object) -> tuple[agem.RWalk, torch.nn.Linear]:
    m = ms.model()
    s = agem.RWalk(
        m,
        torch.optim.SGD(m.parameters(), lr=ms.LR),
        rwalk_lambda=lam,
        rwalk_alpha=ALPHA,
        every=EVERY,
        criterion=ms.HalfSquare(),
        train_mb_size=ms.N,
        train_epochs=STEPS,
        evaluator=False,
        seed=0,
        **kw,  # type: ignore[arg-type]
    )
    return s, m


def _hand_task(
    steps: list[ms.Step], fisher: torch.Tensor, authors: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(task score, Fisher after the task) by the formulas, window by window."""
    score = torch.zeros(6, dtype=torch.float64)
    half = 1.0 if authors else 0.5
    for start in range(0, len(steps), EVERY):
        window = steps[start : start + EVERY]
        omega = sum(-s.g * (s.after - s.before) for s in window)
        d = window[-1].after - window[0].before
        term = omega / (half * fisher * d * d + XI)
        score += term.clamp_min(0) if authors else term
        mean_g2 = sum(s.g * s.g for s in window) / len(window)
        fisher = (1 - ALPHA) * fisher + ALPHA * mean_g2
    return score, fisher


@pytest.mark.parametrize("authors", [False, True])
def test_importance_and_training_match_the_hand_computation(authors: bool) -> None:
    lam = 0.4
    bench, data = ms.data()
    s, m = _strategy(lam, authors=authors)
    plugin = s.rwalk_plugin

    s.train(bench.train_stream[0])
    steps0 = ms.sgd(_initial(), *data[0], STEPS)
    score0, fisher0 = _hand_task(steps0, torch.zeros(6, dtype=torch.float64), authors)
    imp0 = ms.min_max(fisher0) + ms.min_max(score0)
    end0 = steps0[-1].after
    torch.testing.assert_close(ms.params(m), end0, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ms.flat(plugin.fisher), fisher0, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ms.flat(plugin.score), score0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ms.flat(plugin.importance), imp0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ms.flat(plugin.anchor), end0, rtol=1e-12, atol=1e-15)

    s.train(bench.train_stream[1])
    steps1 = ms.sgd(end0, *data[1], STEPS, lam=lam, omega=imp0, anchor=end0)
    score1, fisher1 = _hand_task(steps1, fisher0, authors)
    score = score0 + (score0 + score1) / 2 if authors else (score0 + score1) / 2
    torch.testing.assert_close(ms.params(m), steps1[-1].after, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ms.flat(plugin.fisher), fisher1, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ms.flat(plugin.score), score, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        ms.flat(plugin.importance), ms.min_max(fisher1) + ms.min_max(score), rtol=1e-12, atol=1e-12
    )


def _initial() -> torch.Tensor:
    return ms.params(ms.model())


def test_state_round_trip_and_settings_check() -> None:
    bench, _ = ms.data()
    s, _ = _strategy(0.4)
    s.train(bench.train_stream[0])
    state = s.rwalk_plugin.state_dict()
    other = RWalkPlugin(rwalk_lambda=0.4, rwalk_alpha=ALPHA, every=EVERY)
    other.load_state_dict(state)
    for name in ("importance", "anchor", "fisher", "score"):
        a, b = getattr(other, name), getattr(s.rwalk_plugin, name)
        assert all(torch.equal(a[n], b[n]) for n in b)
    with pytest.raises(ValueError, match="rwalk_alpha"):
        RWalkPlugin(rwalk_lambda=0.4, rwalk_alpha=0.5, every=EVERY).check_state_dict(state)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rwalk_lambda": -1.0}, "rwalk_lambda"),
        ({"rwalk_alpha": 0.0}, "alpha"),
        ({"rwalk_alpha": 1.5}, "alpha"),
        ({"every": 0}, "every"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RWalkPlugin(**kwargs)  # type: ignore[arg-type]
