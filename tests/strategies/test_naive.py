"""Naive fine-tuning on the embedded digits data learns each experience and forgets old ones."""

from __future__ import annotations

import pytest
import torch

import agem
from agem.benchmarks import permuted_digits, split_digits


def _run(bm: agem.benchmarks.Benchmark, seed: int = 0) -> agem.Naive:
    torch.manual_seed(seed)
    model = agem.models.MLP(input_size=64, hidden_sizes=(64,), num_classes=10)
    strategy = agem.Naive(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=16,
        train_epochs=3,
        eval_mb_size=512,
        seed=seed,
    )
    for exp in bm.train_stream:
        strategy.train(exp)
        strategy.eval(bm.test_stream)
    return strategy


@pytest.mark.parametrize("seed", [0, 1])
def test_naive_learns_and_forgets_split_digits(seed: int) -> None:
    strategy = _run(split_digits(n_experiences=5, seed=seed), seed)
    R = strategy.evaluator.accuracy_matrix()
    assert len(R) == 5
    # chance is 0.1 over the 10 outputs (0.5 within the experience's two classes)
    assert R[0][0] >= 0.9
    assert all(R[i][i] >= 0.8 for i in range(5))
    # class-incremental fine-tuning forgets the first classes almost completely
    assert R[4][0] <= R[0][0] - 0.6
    summary = strategy.evaluator.summary()
    assert summary["F_T"] >= 0.6 and summary["BWT"] <= -0.6


def test_naive_learns_and_forgets_permuted_digits() -> None:
    strategy = _run(permuted_digits(n_experiences=4, seed=0))
    R = strategy.evaluator.accuracy_matrix()
    assert R[0][0] >= 0.75  # chance is 0.1
    assert R[3][3] >= 0.75
    assert R[3][0] <= R[0][0] - 0.2
    assert strategy.evaluator.summary()["F_T"] >= 0.2
