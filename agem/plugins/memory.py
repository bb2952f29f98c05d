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


FILLINGS = ("random", "class_balanced", "ring_buffer")


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
    if filling not in FILLINGS[:2]:
        raise ValueError(
            f"memory filling must be one of {', '.join(FILLINGS[:2])}, got {filling!r}"
        )
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


class ClassRing:
    """Per-class ring buffers filled from the training minibatches of one experience.

    The A-GEM authors' code (from February 2019) writes every training example of the
    current task into its class's ring of `per_class` slots as it is trained on, so that
    at the task's end the memory holds the last `per_class` examples seen of each class.
    Writes are vectorised on the device (no host synchronisation): each sample's slot is
    its class's write count plus its rank among the minibatch's samples of that class,
    modulo `per_class`; samples that a later one of the same minibatch would overwrite go
    to a spare row. `take()` reads the filled slots once, at the experience's end.
    """

    def __init__(self, classes: list[int], per_class: int, device: torch.device) -> None:
        if not classes or per_class < 1:
            raise ValueError("a class ring needs at least one class and one slot per class")
        self.per_class = per_class
        self.n_classes = len(classes)
        self.lookup = torch.full((max(classes) + 1,), -1, dtype=torch.long, device=device)
        self.lookup[torch.tensor(classes, device=device)] = torch.arange(
            len(classes), device=device
        )
        self.counts = torch.zeros(len(classes), dtype=torch.long, device=device)
        self.x: Tensor | None = None
        self.y = torch.zeros(len(classes) * per_class + 1, dtype=torch.long, device=device)
        self.t = torch.zeros_like(self.y)

    def add(self, x: Tensor, y: Tensor, t: Tensor) -> None:
        """Write a minibatch (model inputs, labels, task labels) into the rings."""
        m, spare = self.per_class, self.n_classes * self.per_class
        if self.x is None:
            self.x = torch.zeros((spare + 1, *x.shape[1:]), dtype=x.dtype, device=x.device)
        cls = self.lookup[y]
        onehot = torch.nn.functional.one_hot(cls, self.n_classes)
        rank = (onehot.cumsum(0) - 1).gather(1, cls.unsqueeze(1)).squeeze(1)
        in_batch = onehot.sum(0)
        keep = rank >= in_batch[cls] - m  # only the last m of a class survive this batch
        slot = cls * m + (self.counts[cls] + rank) % m
        slot = torch.where(keep, slot, torch.full_like(slot, spare))
        self.x.index_copy_(0, slot, x.detach())
        self.y.index_copy_(0, slot, y)
        self.t.index_copy_(0, slot, t)
        self.counts += in_batch

    def take(self) -> tuple[Tensor, Tensor, Tensor] | None:
        """The filled slots (x, y, t), class by class; None if nothing was written."""
        if self.x is None:
            return None
        filled = self.counts.clamp(max=self.per_class).tolist()
        idx = torch.cat(
            [
                torch.arange(c * self.per_class, c * self.per_class + n, device=self.y.device)
                for c, n in enumerate(filled)
            ]
        )
        return self.x[idx], self.y[idx], self.t[idx]
