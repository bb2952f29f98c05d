"""The standard ways of cutting one dataset into experiences: permuted and split.

Each protocol takes the raw train/test tensors once and returns a `Benchmark` whose
experiences share that storage; per-experience changes (a pixel permutation, uint8 to
float scaling) are batch transforms applied when a minibatch is taken.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from agem.benchmarks.streams import Benchmark, Experience, Stream, TensorDataset


class ToFloat:
    """Batch transform: flatten (optionally) and scale integer images to float32 in [0, 1]."""

    def __init__(self, *, flatten: bool = True, scale: float | None = None) -> None:
        self.flatten = flatten
        self.scale = scale

    def __call__(self, x: Tensor) -> Tensor:
        if self.flatten:
            x = x.reshape(x.shape[0], -1)
        if not x.dtype.is_floating_point:
            x = x.float().div_(self.scale if self.scale is not None else 255.0)
        return x


class PixelPermutation(ToFloat):
    """Batch transform: flatten, scale to float, then reorder features by `permutation`."""

    def __init__(self, permutation: Tensor, *, scale: float | None = None) -> None:
        super().__init__(flatten=True, scale=scale)
        self.permutation = permutation

    def __call__(self, x: Tensor) -> Tensor:
        x = super().__call__(x)
        return x.index_select(1, self.permutation.to(x.device))


def _check_counts(n_experiences: int, limit: int | None = None, what: str = "") -> None:
    if isinstance(n_experiences, bool) or not isinstance(n_experiences, int) or n_experiences < 1:
        raise ValueError(f"n_experiences must be a positive integer, got {n_experiences!r}")
    if limit is not None and n_experiences > limit:
        raise ValueError(f"n_experiences must be at most {limit}{what}, got {n_experiences}")


def _take(
    x: Tensor, y: Tensor, n: int | None, generator: torch.Generator, what: str
) -> tuple[Tensor, Tensor]:
    if n is None or n >= y.shape[0]:
        return x, y
    if n < 1:
        raise ValueError(f"{what} must be a positive integer or None, got {n}")
    idx = torch.randperm(y.shape[0], generator=generator)[:n].sort().values
    return x[idx], y[idx]


def _classes(y: Tensor) -> tuple[int, ...]:
    return tuple(int(c) for c in torch.unique(y).tolist())


def permuted(
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    n_experiences: int,
    *,
    seed: int,
    name: str,
    train_subset: int | None = None,
    scale: float | None = None,
) -> Benchmark:
    """One fixed random pixel permutation per experience (the first one permuted too).

    Single head, the same classes in every experience. `train_subset` keeps that many
    training samples (the same ones in every experience), as the A-GEM paper does.
    """
    _check_counts(n_experiences)
    g = torch.Generator().manual_seed(seed)
    x_tr, y_tr = _take(*train, train_subset, g, "train_subset")
    x_te, y_te = test
    n_features = int(x_tr[0].numel())
    perms = [torch.randperm(n_features, generator=g) for _ in range(n_experiences)]
    classes = _classes(y_tr)
    streams: dict[str, list[Experience]] = {"train": [], "test": []}
    for i, perm in enumerate(perms):
        transform = PixelPermutation(perm, scale=scale)
        for stream, (x, y) in (("train", (x_tr, y_tr)), ("test", (x_te, y_te))):
            ds = TensorDataset(x, y, 0, transform=transform)
            streams[stream].append(Experience(ds, i, 0, classes, stream))
    return Benchmark(
        Stream("train", streams["train"]),
        Stream("test", streams["test"]),
        name,
        len(classes),
        False,
        {"seed": seed, "permutations": [p.tolist() for p in perms]},
    )


def class_order(classes: Sequence[int], seed: int | None) -> list[int]:
    """`classes` in a random order fixed by `seed` (sorted when seed is None)."""
    ordered = sorted(classes)
    if seed is None:
        return ordered
    g = torch.Generator().manual_seed(seed)
    return [ordered[i] for i in torch.randperm(len(ordered), generator=g).tolist()]


def split(
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    n_experiences: int,
    *,
    seed: int | None,
    name: str,
    task_labels: bool = False,
    fixed_class_order: Sequence[int] | None = None,
    flatten: bool = True,
    scale: float | None = None,
) -> Benchmark:
    """Partition the classes into `n_experiences` equal groups, one experience each.

    Class-incremental by default (one head, original class ids). With `task_labels`
    each experience gets task label i and its classes are remapped to 0..k-1 in the
    order listed, for multi-head models. The class order is fixed by `seed`.
    """
    x_tr, y_tr = train
    x_te, y_te = test
    all_classes = _classes(y_tr)
    _check_counts(n_experiences, len(all_classes), f" ({len(all_classes)} classes)")
    if len(all_classes) % n_experiences:
        raise ValueError(
            f"{len(all_classes)} classes cannot be split evenly into {n_experiences} experiences"
        )
    if fixed_class_order is not None:
        order = [int(c) for c in fixed_class_order]
        if sorted(order) != list(all_classes):
            raise ValueError("fixed_class_order must list every class exactly once")
    else:
        order = class_order(all_classes, seed)
    per = len(order) // n_experiences
    groups = [order[i * per : (i + 1) * per] for i in range(n_experiences)]
    transform = ToFloat(flatten=flatten, scale=scale)
    streams: dict[str, list[Experience]] = {"train": [], "test": []}
    for i, group in enumerate(groups):
        group_t = torch.tensor(group)
        for stream, (x, y) in (("train", (x_tr, y_tr)), ("test", (x_te, y_te))):
            idx = torch.nonzero(torch.isin(y, group_t)).flatten()
            yy = y[idx]
            if task_labels:
                remap = torch.full((int(y.max()) + 1,), -1, dtype=torch.long)
                remap[group_t] = torch.arange(len(group))
                yy = remap[yy]
            ds = TensorDataset(x[idx], yy, i if task_labels else 0, transform=transform)
            classes = tuple(range(len(group))) if task_labels else tuple(sorted(group))
            streams[stream].append(Experience(ds, i, i if task_labels else 0, classes, stream))
    return Benchmark(
        Stream("train", streams["train"]),
        Stream("test", streams["test"]),
        name,
        len(all_classes),
        task_labels,
        {"seed": seed, "class_order": order, "classes_per_experience": groups},
    )
