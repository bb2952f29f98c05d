"""Minibatches of an experience: tensor slicing when possible, a DataLoader otherwise.

Both paths visit samples in the order of one `torch.randperm(n, generator=...)` draw, so
for the same generator state they give identical batches. The last partial batch is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from agem.benchmarks.streams import TensorDataset, as_tensor_dataset

Batch = list[Tensor]

MATERIALIZE_BYTES = 256 * 2**20


def _order(n: int, shuffle: bool, generator: torch.Generator | None) -> Tensor | None:
    if not shuffle:
        return None
    return torch.randperm(n, generator=generator)


def tensor_batches(
    data: TensorDataset, batch_size: int, *, order: Tensor | None, device: torch.device
) -> Iterator[Batch]:
    """Slice `data` into batches on `device`; `order` (indices) shuffles it first.

    Shuffling copies the raw tensors once per epoch so that every batch is a view. The
    dataset's batch transform is applied once to the whole epoch when the result fits in
    `MATERIALIZE_BYTES` (one vectorised call instead of one per batch), else per batch.
    """
    x, y, t = data.x, data.y, data.t
    if order is not None:
        order = order.to(x.device)
        x, y, t = x[order], y[order], t[order]
    x, y, t = (v.to(device, non_blocking=True) for v in (x, y, t))
    transform = data.transform
    if transform is not None and x.numel() * 4 <= MATERIALIZE_BYTES:
        x, transform = transform(x), None
    for start in range(0, y.shape[0], batch_size):
        end = start + batch_size
        xb = x[start:end]
        if transform is not None:
            xb = transform(xb)
        yield [xb, y[start:end], t[start:end]]


def loader_batches(
    dataset: Dataset[Any],
    batch_size: int,
    *,
    order: Tensor | None,
    device: torch.device,
    num_workers: int = 0,
    default_task: int = 0,
    seed: int = 0,
) -> Iterator[Batch]:
    """Batches of any map-style dataset through a DataLoader, as [x, y, t] on `device`.

    The DataLoader draws its workers' base seed from its own generator, seeded with
    `seed`, never from torch's global RNG.
    """
    n = len(dataset)  # type: ignore[arg-type]
    sampler = order.tolist() if order is not None else range(n)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed),
    )
    for batch in loader:
        xb, yb = batch[0], torch.as_tensor(batch[1]).long()
        tb = (
            torch.as_tensor(batch[2]).long()
            if len(batch) > 2
            else torch.full_like(yb, default_task)
        )
        yield [v.to(device, non_blocking=True) for v in (xb, yb, tb)]


def batches(
    dataset: Dataset[Any],
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None,
    device: torch.device,
    num_workers: int = 0,
    default_task: int = 0,
) -> Iterator[Batch]:
    """Minibatches `[x, y, t]` of `dataset`, through the fastest path that applies.

    Randomness comes from `generator` only, and only when shuffling: the order, and for
    the DataLoader path its workers' seed (read from a copy of `generator`, which both
    paths therefore leave in the same state). Without shuffling nothing random is
    drawn, so an evaluation never changes any generator's state.
    """
    n = len(dataset)  # type: ignore[arg-type]
    order = _order(n, shuffle, generator)
    tensors = as_tensor_dataset(dataset)
    if tensors is not None:
        return tensor_batches(tensors, batch_size, order=order, device=device)
    seed = 0
    if shuffle and generator is not None:
        # a copy of the generator gives the seed, so both paths leave it in the same state
        peek = torch.Generator(device=generator.device).set_state(generator.get_state())
        seed = int(torch.randint(2**62, (), generator=peek))
    return loader_batches(
        dataset,
        batch_size,
        order=order,
        device=device,
        num_workers=num_workers,
        default_task=default_task,
        seed=seed,
    )
