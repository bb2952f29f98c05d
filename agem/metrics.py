"""Continual-learning metrics as pure functions of an accuracy matrix.

`R[i][j]` is the test accuracy on experience j after training experience i (row i is
measured after experience i; T experiences, so R is T x T). Inputs may be nested lists
or arrays. Definitions follow Chaudhry et al., "Efficient Lifelong Learning with A-GEM"
(ICLR 2019) for A_T, F_T and LCA, and Lopez-Paz & Ranzato, "Gradient Episodic Memory
for Continual Learning" (NeurIPS 2017) for BWT and FWT.

Also the accuracy of model outputs: `accuracy`, `correct_count` (stays on the device),
`per_experience_accuracy` / `per_experience_loss` (samples tagged with their experience)
and `task_aware_accuracy` (each sample classified among its own task's classes, for
multi-head runs that share one output layer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor


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
    try:
        c = np.asarray(curves, dtype=np.float64)
    except ValueError:
        raise ValueError("curves must be equal-length sequences of accuracies") from None
    if c.ndim != 2 or c.shape[0] == 0:
        raise ValueError(f"curves must be a non-empty 2-d array, got shape {c.shape}")
    if c.shape[1] < beta + 1:
        raise ValueError(f"each curve needs beta + 1 = {beta + 1} points, got {c.shape[1]}")
    if np.isnan(c[:, : beta + 1]).any():
        raise ValueError("the learning curves have missing (NaN) points")
    z = c[:, : beta + 1].mean(axis=0)
    return float(z.mean())


# ---- accuracy and loss of model outputs ------------------------------------------------
def _predictions(outputs: Any) -> Tensor:
    out = torch.as_tensor(outputs)
    if out.dim() == 1 and not out.dtype.is_floating_point:
        return out  # already class ids
    if out.dim() < 2:
        raise ValueError(
            f"outputs must be logits [N, C] or integer predictions [N], got {tuple(out.shape)}"
        )
    return out.argmax(dim=-1)


def _targets(targets: Any, n: int, name: str = "targets") -> Tensor:
    y = torch.as_tensor(targets)
    if y.dim() != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must be a 1-d tensor of {n} entries, got {tuple(y.shape)}")
    if y.dtype.is_floating_point:
        raise ValueError(f"{name} must be integers, got dtype {y.dtype}")
    return y


def correct_count(outputs: Any, targets: Any) -> Tensor:
    """Number of correct predictions, as a 0-d tensor on the outputs' device (no host sync).

    `outputs` are logits [N, C] (the prediction is the argmax) or class ids [N].
    """
    pred = _predictions(outputs)
    return (pred == _targets(targets, pred.shape[0]).to(pred.device)).sum()


def accuracy(outputs: Any, targets: Any) -> float:
    """Fraction of samples whose prediction (argmax of the logits) equals the target."""
    pred = _predictions(outputs)
    if pred.shape[0] == 0:
        raise ValueError("accuracy of an empty batch is undefined")
    return float(correct_count(pred, targets)) / pred.shape[0]


def _experience_ids(experience_ids: Any, n: int) -> Tensor:
    return _targets(experience_ids, n, "experience_ids").cpu()


def per_experience_accuracy(outputs: Any, targets: Any, experience_ids: Any) -> dict[int, float]:
    """Accuracy of the samples of each experience: `{experience id: accuracy}`.

    `experience_ids[n]` names the experience sample n comes from (e.g. when several test
    sets are evaluated in one pass); the ids present are the keys, in increasing order.
    """
    pred = _predictions(outputs).cpu()
    ok = pred == _targets(targets, pred.shape[0]).cpu()
    ids = _experience_ids(experience_ids, pred.shape[0])
    return {int(e): float(ok[ids == e].double().mean()) for e in torch.unique(ids).tolist()}


def per_experience_loss(losses: Any, experience_ids: Any) -> dict[int, float]:
    """Mean per-sample loss of each experience: `{experience id: mean loss}`.

    `losses` are per-sample losses [N] (e.g. `cross_entropy(..., reduction="none")`).
    """
    loss = torch.as_tensor(losses, dtype=torch.float64).cpu()
    if loss.dim() != 1:
        raise ValueError(f"losses must be per-sample, 1-d, got shape {tuple(loss.shape)}")
    ids = _experience_ids(experience_ids, loss.shape[0])
    return {int(e): float(loss[ids == e].mean()) for e in torch.unique(ids).tolist()}


def task_aware_predictions(
    outputs: Tensor, task_labels: Any, classes_per_task: Mapping[int, Sequence[int]]
) -> Tensor:
    """Argmax over only the classes of each sample's task (multi-head by masking).

    A single output layer over all classes acts as one head per task when the logits of
    the classes outside a sample's task are ignored, as in the A-GEM paper's multi-head
    setting. Runs on the outputs' device without a host synchronisation.
    """
    out = torch.as_tensor(outputs)
    if out.dim() != 2:
        raise ValueError(f"outputs must be logits [N, C], got shape {tuple(out.shape)}")
    n, width = out.shape
    tasks = _targets(task_labels, n, "task_labels").to(out.device)
    if not classes_per_task:
        raise ValueError("classes_per_task must map at least one task label to its classes")
    n_tasks = max(int(t) for t in classes_per_task) + 1
    allowed = torch.zeros((n_tasks, width), dtype=torch.bool)
    for t, classes in classes_per_task.items():
        if int(t) < 0:
            raise ValueError(f"task labels must be >= 0, got {t}")
        for c in classes:
            if not 0 <= int(c) < width:
                raise ValueError(f"task {t} names class {c}, outside the {width} outputs")
            allowed[int(t), int(c)] = True
    mask = allowed.to(out.device)[tasks]  # [N, C]; an unknown task label raises IndexError
    return out.masked_fill(~mask, float("-inf")).argmax(dim=-1)


def task_aware_accuracy(
    outputs: Any,
    targets: Any,
    task_labels: Any,
    classes_per_task: Mapping[int, Sequence[int]],
) -> float:
    """Accuracy when each sample is classified among its own task's classes only.

    For a model with one head per task (`MultiHeadClassifier`) the outputs already are
    the task's head, so plain `accuracy` is task-aware; this function is for a shared
    output layer over all classes (`classes_per_task[t]` lists task t's class ids).
    """
    out = torch.as_tensor(outputs)
    if out.dim() != 2 or out.shape[0] == 0:
        raise ValueError(f"outputs must be non-empty logits [N, C], got shape {tuple(out.shape)}")
    known = {int(t) for t in classes_per_task}
    seen = {int(t) for t in torch.unique(torch.as_tensor(task_labels)).tolist()}
    if seen - known:
        raise ValueError(f"task labels {sorted(seen - known)} are not in classes_per_task")
    pred = task_aware_predictions(out, task_labels, classes_per_task)
    return accuracy(pred, targets)
