"""The continual-learning metrics against hand-worked matrices, plus hypothesis property tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agem import metrics

# ---- hand-worked cases --------------------------------------------------------------


def test_single_experience() -> None:
    R = [[0.7]]
    assert metrics.average_accuracy(R) == pytest.approx(0.7)
    assert metrics.forgetting(R) == 0.0
    assert metrics.backward_transfer(R) == 0.0
    assert metrics.forward_transfer(R, [0.1]) == 0.0


def test_two_by_two() -> None:
    R = [[0.9, 0.2], [0.6, 0.8]]
    b = [0.1, 0.15]
    assert metrics.average_accuracy(R) == pytest.approx((0.6 + 0.8) / 2)
    assert metrics.forgetting(R) == pytest.approx(0.9 - 0.6)
    assert metrics.backward_transfer(R) == pytest.approx(0.6 - 0.9)
    assert metrics.forward_transfer(R, b) == pytest.approx(0.2 - 0.15)


def test_three_by_three_where_forgetting_is_not_minus_bwt() -> None:
    # experience 0 peaks after experience 1 (0.85), not on the diagonal (0.8)
    R = np.array([[0.8, 0.1, 0.2], [0.85, 0.9, 0.3], [0.5, 0.7, 0.95]])
    b = [0.1, 0.1, 0.2]
    assert metrics.average_accuracy(R) == pytest.approx((0.5 + 0.7 + 0.95) / 3)
    # F_T: j=0: max(0.8, 0.85) - 0.5 = 0.35; j=1: max(0.1, 0.9) - 0.7 = 0.2
    assert metrics.forgetting(R) == pytest.approx((0.35 + 0.2) / 2)
    # BWT: j=0: 0.5 - 0.8; j=1: 0.7 - 0.9
    assert metrics.backward_transfer(R) == pytest.approx((-0.3 - 0.2) / 2)
    # FWT: j=1: R[0][1] - b1 = 0.0; j=2: R[1][2] - b2 = 0.1
    assert metrics.forward_transfer(R, b) == pytest.approx((0.0 + 0.1) / 2)


def test_learning_curve_area_is_a_plain_mean() -> None:
    curves = [[0.1, 0.3, 0.5], [0.2, 0.2, 0.8]]
    # Z = (0.15, 0.25, 0.65)
    assert metrics.learning_curve_area(curves, beta=2) == pytest.approx((0.15 + 0.25 + 0.65) / 3)
    assert metrics.learning_curve_area(curves, beta=1) == pytest.approx((0.15 + 0.25) / 2)
    assert metrics.learning_curve_area(curves, beta=0) == pytest.approx(0.15)
    # a trapezoid would give (0.15/2 + 0.25 + 0.65/2) / 2 = 0.325
    assert metrics.learning_curve_area(curves, beta=2) != pytest.approx(0.325)


def test_learning_curve_area_default_beta_is_10() -> None:
    curve = [b / 20 for b in range(15)]  # longer than needed: the first 11 points count
    assert metrics.learning_curve_area([curve]) == pytest.approx(sum(curve[:11]) / 11)


@pytest.mark.parametrize(
    ("R", "message"),
    [
        ([[0.1, 0.2]], "square"),
        ([], "square"),
        ([[0.1, float("nan")], [0.2, 0.3]], "missing"),
    ],
)
def test_bad_matrices(R: list[list[float]], message: str) -> None:
    for fn in (metrics.average_accuracy, metrics.forgetting, metrics.backward_transfer):
        with pytest.raises(ValueError, match=message):
            fn(R)


def test_bad_initial_accuracies_and_curves() -> None:
    with pytest.raises(ValueError, match="2 entries"):
        metrics.forward_transfer([[0.5, 0.1], [0.4, 0.6]], [0.1])
    with pytest.raises(ValueError, match="beta"):
        metrics.learning_curve_area([[0.1, 0.2]], beta=-1)
    with pytest.raises(ValueError, match="beta"):
        metrics.learning_curve_area([[0.1, 0.2]], beta=True)
    with pytest.raises(ValueError, match="beta \\+ 1 = 3 points"):
        metrics.learning_curve_area([[0.1, 0.2]], beta=2)
    with pytest.raises(ValueError, match="equal-length"):
        metrics.learning_curve_area([[0.1, 0.2], [0.3]], beta=1)
    with pytest.raises(ValueError, match="missing"):
        metrics.learning_curve_area([[0.1, float("nan")]], beta=1)


# ---- accuracy of outputs ---------------------------------------------------------------


def test_accuracy_and_correct_count() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0], [5.0, 0.0, 0.0]])
    y = torch.tensor([0, 1, 0, 0])
    assert metrics.accuracy(logits, y) == pytest.approx(0.75)
    assert metrics.accuracy(torch.tensor([0, 1, 2, 0]), y) == pytest.approx(0.75)
    count = metrics.correct_count(logits, y)
    assert isinstance(count, torch.Tensor) and int(count) == 3
    with pytest.raises(ValueError, match="targets"):
        metrics.accuracy(logits, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="empty"):
        metrics.accuracy(torch.zeros((0, 3)), torch.zeros(0, dtype=torch.long))


def test_per_experience_accuracy_and_loss() -> None:
    logits = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    y = torch.tensor([0, 1, 1, 1, 1])
    exp = torch.tensor([0, 0, 1, 1, 1])
    assert metrics.per_experience_accuracy(logits, y, exp) == pytest.approx({0: 0.5, 1: 2 / 3})
    losses = torch.tensor([1.0, 3.0, 0.5, 0.5, 2.0])
    assert metrics.per_experience_loss(losses, exp) == pytest.approx({0: 2.0, 1: 1.0})
    with pytest.raises(ValueError, match="experience_ids"):
        metrics.per_experience_accuracy(logits, y, exp[:3])


def test_task_aware_accuracy_masks_other_tasks_classes() -> None:
    # shared output layer over 4 classes; task 0 owns classes {0, 1}, task 1 owns {2, 3}
    logits = torch.tensor(
        [
            [0.0, 1.0, 9.0, 0.0],  # task 0, true 1: argmax overall is 2, within task 0 is 1
            [5.0, 0.0, 0.0, 1.0],  # task 1, true 3: within task 1 it is 3
            [0.0, 2.0, 0.0, 0.0],  # task 0, true 0: wrong either way
        ]
    )
    y = torch.tensor([1, 3, 0])
    tasks = torch.tensor([0, 1, 0])
    classes = {0: [0, 1], 1: [2, 3]}
    assert metrics.accuracy(logits, y) == pytest.approx(0.0)
    assert metrics.task_aware_accuracy(logits, y, tasks, classes) == pytest.approx(2 / 3)
    pred = metrics.task_aware_predictions(logits, tasks, classes)
    assert pred.tolist() == [1, 3, 1]
    with pytest.raises(ValueError, match="not in classes_per_task"):
        metrics.task_aware_accuracy(logits, y, torch.tensor([0, 2, 0]), classes)
    with pytest.raises(ValueError, match="outside"):
        metrics.task_aware_accuracy(logits, y, tasks, {0: [0, 7], 1: [2]})


# ---- properties ------------------------------------------------------------------------

acc = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def matrices(draw: st.DrawFn, max_t: int = 6) -> np.ndarray:
    T = draw(st.integers(min_value=1, max_value=max_t))
    values = draw(st.lists(acc, min_size=T * T, max_size=T * T))
    return np.array(values).reshape(T, T)


@settings(max_examples=200, deadline=None)
@given(matrices(), st.data())
def test_ranges_and_identities(R: np.ndarray, data: st.DataObject) -> None:
    T = R.shape[0]
    b = data.draw(st.lists(acc, min_size=T, max_size=T))
    a_t = metrics.average_accuracy(R)
    f_t = metrics.forgetting(R)
    bwt = metrics.backward_transfer(R)
    fwt = metrics.forward_transfer(R, b)
    assert 0.0 <= a_t <= 1.0
    assert a_t == pytest.approx(R[-1].mean())
    for v in (f_t, bwt, fwt):
        assert -1.0 <= v <= 1.0
    # the best accuracy is at least the one right after training: F_T >= -BWT
    assert f_t >= -bwt - 1e-12
    # metrics of a list input equal those of the array
    assert metrics.forgetting(R.tolist()) == f_t


@settings(max_examples=200, deadline=None)
@given(matrices())
def test_no_forgetting_when_every_column_is_non_decreasing(R: np.ndarray) -> None:
    R = np.maximum.accumulate(R, axis=0)  # each column non-decreasing down the rows
    assert metrics.forgetting(R) <= 1e-12
    assert metrics.backward_transfer(R) >= -1e-12


@settings(max_examples=100, deadline=None)
@given(matrices())
def test_constant_columns_from_the_diagonal_give_zero_forgetting_and_bwt(R: np.ndarray) -> None:
    T = R.shape[0]
    for j in range(T):
        R[j:, j] = R[j, j]  # learned once, never forgotten nor improved
        R[:j, j] = np.minimum(R[:j, j], R[j, j])  # never better before training on it
    assert metrics.forgetting(R) == pytest.approx(0.0, abs=1e-12)
    assert metrics.backward_transfer(R) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(matrices())
def test_forward_transfer_is_zero_against_its_own_superdiagonal(R: np.ndarray) -> None:
    T = R.shape[0]
    b = [0.0] + [R[j - 1, j] for j in range(1, T)]
    assert metrics.forward_transfer(R, b) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=12),
    st.integers(min_value=1, max_value=5),
    st.data(),
)
def test_lca_lies_between_the_extremes_of_the_curves(
    k_beta: int, K: int, data: st.DataObject
) -> None:
    n = k_beta + 1
    curves = [data.draw(st.lists(acc, min_size=n, max_size=n)) for _ in range(K)]
    lca = metrics.learning_curve_area(curves, beta=k_beta)
    flat = [v for c in curves for v in c]
    assert min(flat) - 1e-12 <= lca <= max(flat) + 1e-12
    # constant curves give that constant
    assert metrics.learning_curve_area([[0.25] * n] * K, beta=k_beta) == pytest.approx(0.25)
    assert not math.isnan(lca)
