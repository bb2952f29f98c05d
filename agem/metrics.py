"""Continual-learning metrics as pure functions of an accuracy matrix.

`R[i][j]` is the test accuracy on experience j after training experience i (row i is
measured after experience i; T experiences, so R is T x T). Inputs may be nested lists
or arrays. Definitions follow Chaudhry et al., "Efficient Lifelong Learning with A-GEM"
(ICLR 2019) for A_T, F_T and LCA, and Lopez-Paz & Ranzato, "Gradient Episodic Memory
for Continual Learning" (NeurIPS 2017) for BWT and FWT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray


def _matrix(R: Any) -> NDArray[np.float64]:
    m = np.asarray(R, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"the accuracy matrix must be square and non-empty, got shape {m.shape}")
    if np.isnan(m).any():
        raise ValueError("the accuracy matrix has missing (NaN) entries")
    return m


def average_accuracy(R: Any) -> float:
    """A_T = (1/T) sum_j R[T-1][j]: mean accuracy over all experiences after the last."""
    m = _matrix(R)
    return float(m[-1].mean())


def forgetting(R: Any) -> float:
    """F_T = (1/(T-1)) sum_{j<T-1} (max_{l<T-1} R[l][j] - R[T-1][j]); 0.0 when T = 1.

    The best accuracy ever reached on experience j before the last, minus its final
    accuracy (A-GEM paper, eq. 2, averaged over the first T-1 experiences).
    """
    m = _matrix(R)
    T = m.shape[0]
    if T == 1:
        return 0.0
    best = m[: T - 1, : T - 1].max(axis=0)
    return float((best - m[T - 1, : T - 1]).mean())


def backward_transfer(R: Any) -> float:
    """BWT = (1/(T-1)) sum_{j<T-1} (R[T-1][j] - R[j][j]); 0.0 when T = 1."""
    m = _matrix(R)
    T = m.shape[0]
    if T == 1:
        return 0.0
    return float((m[T - 1, : T - 1] - np.diag(m)[: T - 1]).mean())


def forward_transfer(R: Any, initial_accuracies: Sequence[float]) -> float:
    """FWT = (1/(T-1)) sum_{j>=1} (R[j-1][j] - b_j); b_j is the untrained model's accuracy.

    0.0 when T = 1.
    """
    m = _matrix(R)
    T = m.shape[0]
    b = np.asarray(initial_accuracies, dtype=np.float64)
    if b.shape != (T,):
        raise ValueError(f"initial_accuracies must have {T} entries, got shape {b.shape}")
    if T == 1:
        return 0.0
    idx = np.arange(1, T)
    return float((m[idx - 1, idx] - b[1:]).mean())


def learning_curve_area(curves: Any, beta: int = 10) -> float:
    """LCA_beta = (1/(beta+1)) sum_{b=0..beta} Z_b, with Z_b = mean_k curves[k][b].

    `curves[k][b]` is the accuracy on experience k's test set after b minibatches of
    experience k (b = 0: before its first minibatch). A plain mean, not a trapezoid.
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, np.integer)) or beta < 0:
        raise ValueError(f"beta must be a non-negative integer, got {beta!r}")
    c = np.asarray(curves, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] == 0:
        raise ValueError(f"curves must be a non-empty 2-d array, got shape {c.shape}")
    if c.shape[1] < beta + 1:
        raise ValueError(f"each curve needs beta + 1 = {beta + 1} points, got {c.shape[1]}")
    z = c[:, : beta + 1].mean(axis=0)
    return float(z.mean())
