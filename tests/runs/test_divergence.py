"""`DivergenceCheck`: the first non-finite (or blown-up) loss, found from block read-backs."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import agem
from agem.benchmarks import from_tensors
from agem.models import MLP
from agem.plugins import Plugin
from agem.runs.divergence import DivergenceCheck, TrainingDiverged


class SpoilLoss(Plugin):
    """Scales the loss of one iteration of experience 1 (counted from 1) by `value`."""

    def __init__(self, iteration: int, value: float) -> None:
        self.iteration = iteration
        self.value = value

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        clock = strategy.clock
        if clock.train_exp_counter == 1 and clock.train_exp_iterations + 1 == self.iteration:
            strategy.loss = strategy.loss * self.value


def _train(spoil: Plugin, every: int, epochs: int = 1) -> tuple[TrainingDiverged, Any]:
    g = torch.Generator().manual_seed(0)
    bm = from_tensors(
        train=[(torch.randn(200, 6, generator=g), torch.randint(0, 3, (200,), generator=g))] * 2,
        test=[(torch.randn(20, 6, generator=g), torch.randint(0, 3, (20,), generator=g))] * 2,
    )
    model = MLP(6, (8,), 3)
    strategy = agem.Naive(
        model,
        torch.optim.SGD(model.parameters(), lr=0.01),
        train_mb_size=10,
        train_epochs=epochs,
        plugins=[DivergenceCheck(every=every), spoil],
    )
    strategy.train(bm.train_stream[0])
    with pytest.raises(TrainingDiverged) as info:
        strategy.train(bm.train_stream[1])
    return info.value, strategy


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e12])
@pytest.mark.parametrize("every", [1, 7, 100])
def test_the_first_bad_iteration_is_reported(value: float, every: int) -> None:
    err, strategy = _train(SpoilLoss(13, value), every)
    assert (err.experience, err.iteration) == (1, 13)
    assert "experience 1, iteration 13" in str(err)
    # stopped within the block holding iteration 13 (the clock counts finished iterations;
    # the check runs in the last iteration's hook, or after the epoch's last one)
    expected = {1: 12, 7: 13, 100: 20}[every]
    assert strategy.clock.train_exp_iterations == expected


def test_a_finite_loss_passes() -> None:
    g = torch.Generator().manual_seed(0)
    bm = from_tensors(
        train=[(torch.randn(50, 6, generator=g), torch.randint(0, 3, (50,)))],
        test=[(torch.randn(5, 6), torch.randint(0, 3, (5,)))],
    )
    model = MLP(6, (8,), 3)
    strategy = agem.Naive(
        model,
        torch.optim.SGD(model.parameters(), lr=0.01),
        train_mb_size=10,
        plugins=[DivergenceCheck(every=3)],
    )
    strategy.train(bm.train_stream)
    assert strategy.clock.train_iterations == 5
