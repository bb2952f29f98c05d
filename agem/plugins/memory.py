"""Pieces shared by the episodic-memory plugins (A-GEM, GEM) and the fleet: loading
stored patterns, keeping BatchNorm statistics unchanged by memory forward passes, and
drawing memory samples on the device."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from agem.benchmarks.streams import as_tensor_dataset

BatchNorm = nn.modules.batchnorm._BatchNorm


def batchnorm_modules(model: nn.Module) -> list[BatchNorm]:
    """The BatchNorm layers of `model` that track running statistics."""
    return [m for m in model.modules() if isinstance(m, BatchNorm) and m.track_running_stats]


class KeepBatchNormStats:
    """Context that restores the running statistics of `modules` changed inside it."""

    def __init__(self, modules: list[BatchNorm]) -> None:
        self.modules = modules
        self.saved: list[dict[str, Tensor]] = []

    def __enter__(self) -> None:
        self.saved = [
            {k: b.clone() for k, b in m.named_buffers(recurse=False)} for m in self.modules
        ]

    def __exit__(self, *exc: object) -> None:
        for m, saved in zip(self.modules, self.saved, strict=True):
            for k, b in m.named_buffers(recurse=False):
                if k in saved:
                    b.copy_(saved[k])


def load_patterns(
    dataset: Dataset[Any], idx: Tensor, *, num_workers: int = 0, task_label: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """The patterns of `dataset` at `idx` as stacked tensors (x, y, t), x transformed.

    Tensor-backed datasets are indexed directly; others go through a DataLoader over only
    the selected items, in batches small enough that `num_workers` workers share the
    loading. Items without a task label get `task_label`.
    """
    tensors = as_tensor_dataset(dataset)
    if tensors is not None:
        return tensors.batch(idx)
    k = len(idx)
    per_batch = k if num_workers == 0 else -(-k // (4 * num_workers))
    loader = DataLoader(
        Subset(dataset, idx.tolist()),
        batch_size=max(1, min(per_batch, 256)),
        shuffle=False,
        num_workers=num_workers,
    )
    xs, ys, ts = [], [], []
    for batch in loader:
        xs.append(batch[0])
        ys.append(torch.as_tensor(batch[1]).long())
        ts.append(
            torch.as_tensor(batch[2]).long()
            if len(batch) > 2
            else torch.full((len(batch[1]),), task_label, dtype=torch.long)
        )
    return torch.cat(xs), torch.cat(ys), torch.cat(ts)


def random_subset(
    n: int,
    k: int,
    *,
    runs: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """min(k, n) indices of range(n), uniformly without replacement, drawn on `device`.

    The indices of the k largest of n independent uniform numbers (float64, so ties have
    negligible probability) form a uniform random k-subset. No host synchronisation and
    no `randperm`, so the draw can be captured in a CUDA graph. With `runs`, one
    independent subset per run: shape [runs, k].
    """
    if n < 1 or k < 1:
        raise ValueError(f"random_subset needs n >= 1 and k >= 1, got n={n}, k={k}")
    shape = (n,) if runs is None else (runs, n)
    keys = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
    return keys.topk(min(k, n), dim=-1, sorted=False).indices


FILLINGS = ("random", "class_balanced")


def dataset_labels(dataset: Dataset[Any]) -> Tensor:
    """The integer labels of `dataset` (read directly from a tensor-backed one)."""
    tensors = as_tensor_dataset(dataset)
    if tensors is not None:
        return tensors.y
    n = len(dataset)  # type: ignore[arg-type]
    return torch.tensor([int(dataset[i][1]) for i in range(n)], dtype=torch.long)


def select_patterns(
    dataset: Dataset[Any], k: int, generator: torch.Generator, *, filling: str = "random"
) -> Tensor:
    """The indices of the min(k, n) patterns of `dataset` to store in an episodic memory.

    "random": uniformly without replacement. "class_balanced": as equal a number per
    class as the classes' sizes allow (the A-GEM authors' 25 per class for 250 over 10
    classes; a class with too few gives all it has and the rest goes to the others),
    uniformly within each class. Drawn on the CPU from `generator`, once per experience.
    """
    if filling not in FILLINGS:
        raise ValueError(f"memory filling must be one of {', '.join(FILLINGS)}, got {filling!r}")
    n = len(dataset)  # type: ignore[arg-type]
    k = min(k, n)
    perm = torch.randperm(n, generator=generator)
    if filling == "random":
        return perm[:k]
    labels = dataset_labels(dataset).cpu()[perm]
    classes, counts = labels.unique(return_counts=True)
    shares = [0] * len(classes)
    left = k
    while left > 0:  # equal shares, capped by each class's size
        open_ = [c for c in range(len(classes)) if shares[c] < int(counts[c])]
        base, extra = divmod(left, len(open_))
        for rank, c in enumerate(open_):
            shares[c] = min(int(counts[c]), shares[c] + base + (1 if rank < extra else 0))
        left = k - sum(shares)
    picked = [perm[labels == cls][:share] for cls, share in zip(classes, shares, strict=True)]
    return torch.cat(picked)
