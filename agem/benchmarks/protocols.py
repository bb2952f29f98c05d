"""The standard ways of cutting one dataset into experiences: permuted, split, and any
other per-experience input transform (rotations); plus held-out validation experiences.

Each protocol takes the raw train/test tensors once and returns a `Benchmark` whose
experiences share that storage; per-experience changes (a pixel permutation, uint8 to
float scaling, standardisation) are batch transforms applied when a minibatch is taken.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from agem.benchmarks.streams import BatchTransform, Benchmark, Experience, Stream, TensorDataset

# `Benchmark.info` entries that hold one item per experience (sliced by `reserve_validation`)
PER_EXPERIENCE_INFO = ("permutations", "classes_per_experience", "angles")


def _as_stat(value: Tensor | float | None, what: str) -> Tensor | None:
    if value is None:
        return None
    t = torch.as_tensor(value, dtype=torch.float32)
    if not torch.isfinite(t).all():
        raise ValueError(f"{what} must be finite")
    return t


class ToFloat:
    """Batch transform: integer images to float32 in [0, 1], optionally standardised
    (`(x - mean) / std`, `mean`/`std` broadcastable to one sample, e.g. shape [C, 1, 1]),
    then flattened to [batch, features] unless `flatten=False`.

    `scale` divides integer inputs (default 255); float inputs are not rescaled.
    Subclasses change the images through `_spatial` (before standardisation) or the
    flattened features through `_features` (after it).
    """

    def __init__(
        self,
        *,
        flatten: bool = True,
        scale: float | None = None,
        mean: Tensor | float | None = None,
        std: Tensor | float | None = None,
    ) -> None:
        if scale is not None and not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.flatten = flatten
        self.scale = scale
        self.mean = _as_stat(mean, "mean")
        self.std = _as_stat(std, "std")
        if self.std is not None and not (self.std > 0).all():
            raise ValueError("std must be positive")

    def _to_float(self, x: Tensor) -> Tensor:
        if x.dtype.is_floating_point:
            return x
        return x.float().div_(self.scale if self.scale is not None else 255.0)

    def _spatial(self, x: Tensor) -> Tensor:
        return x

    def _normalise(self, x: Tensor) -> Tensor:
        if self.mean is not None:
            x = x - self.mean.to(x.device)
        if self.std is not None:
            x = x / self.std.to(x.device)
        return x

    def _features(self, x: Tensor) -> Tensor:
        return x

    def __call__(self, x: Tensor) -> Tensor:
        x = self._normalise(self._spatial(self._to_float(x)))
        shape = x.shape
        x = self._features(x.reshape(shape[0], -1))
        return x if self.flatten else x.reshape(shape)


class PixelPermutation(ToFloat):
    """Batch transform: scale to float (and standardise), then reorder the flattened
    features by `permutation`; the result is flat unless `flatten=False`."""

    def __init__(
        self,
        permutation: Tensor,
        *,
        scale: float | None = None,
        mean: Tensor | float | None = None,
        std: Tensor | float | None = None,
        flatten: bool = True,
    ) -> None:
        super().__init__(flatten=flatten, scale=scale, mean=mean, std=std)
        self.permutation = permutation

    def _features(self, x: Tensor) -> Tensor:
        return x.index_select(1, self.permutation.to(x.device))


def pixel_stats(x: Tensor, *, scale: float | None = None) -> tuple[Tensor, Tensor]:
    """Mean and std of the scaled pixel values of `x` [n, ...]: per channel (shape
    [C, 1, 1]) for images [n, C, H, W], one scalar otherwise. Exact for uint8 data
    (from a histogram, without a float copy of the data)."""
    per_channel = x.dim() == 4
    div = 1.0 if x.dtype.is_floating_point else (scale if scale is not None else 255.0)
    groups = [x[:, c] for c in range(x.shape[1])] if per_channel else [x]
    means, stds = [], []
    levels = torch.arange(256, dtype=torch.float64)
    for g in groups:
        if g.dtype == torch.uint8:
            counts = torch.bincount(g.reshape(-1), minlength=256).double()
            n = counts.sum()
            mean = (counts * levels).sum() / n
            var = (counts * (levels - mean) ** 2).sum() / n
        else:
            v = g.double().reshape(-1)
            mean, var = v.mean(), v.var(unbiased=False)
        means.append(mean / div)
        stds.append(var.sqrt() / div)
    mean_t = torch.stack(means).float()
    std_t = torch.stack(stds).float().clamp_min(1e-8)
    if per_channel:
        return mean_t.view(-1, 1, 1), std_t.view(-1, 1, 1)
    return mean_t[0], std_t[0]


def _stats(x: Tensor, standardize: bool, scale: float | None) -> dict[str, Tensor | None]:
    if not standardize:
        return {"mean": None, "std": None}
    mean, std = pixel_stats(x, scale=scale)
    return {"mean": mean, "std": std}


def _check_counts(n_experiences: int, limit: int | None = None, what: str = "") -> None:
    if isinstance(n_experiences, bool) or not isinstance(n_experiences, int) or n_experiences < 1:
        raise ValueError(f"n_experiences must be a positive integer, got {n_experiences!r}")
    if limit is not None and n_experiences > limit:
        raise ValueError(f"n_experiences must be at most {limit}{what}, got {n_experiences}")


def take_subset(
    x: Tensor, y: Tensor, n: int | None, generator: torch.Generator, what: str = "train_subset"
) -> tuple[Tensor, Tensor]:
    """`n` samples drawn without replacement from `generator` (all if None or more)."""
    if n is None:
        return x, y
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{what} must be a positive integer or None, got {n!r}")
    if n >= y.shape[0]:
        return x, y
    idx = torch.randperm(y.shape[0], generator=generator)[:n].sort().values
    return x[idx], y[idx]


def _classes(y: Tensor) -> tuple[int, ...]:
    return tuple(int(c) for c in torch.unique(y).tolist())


def domain_incremental(
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    transforms: Sequence[BatchTransform],
    *,
    name: str,
    task_labels: bool = False,
    info: dict[str, Any] | None = None,
    validation_experiences: int = 0,
    train_per_experience: Sequence[tuple[Tensor, Tensor]] | None = None,
) -> Benchmark:
    """One experience per transform, all over the same stored train/test tensors
    (or, with `train_per_experience`, experience i's own training tensors).

    Every experience has the same classes (one head); with `task_labels` experience i
    gets task label i (one head per experience, classes not remapped).
    """
    _check_counts(len(transforms))
    x_tr, y_tr = train
    x_te, y_te = test
    classes = _classes(y_tr)
    streams: dict[str, list[Experience]] = {"train": [], "test": []}
    if train_per_experience is not None and len(train_per_experience) != len(transforms):
        raise ValueError("train_per_experience needs one (x, y) per transform")
    for i, transform in enumerate(transforms):
        task = i if task_labels else 0
        own = train_per_experience[i] if train_per_experience is not None else (x_tr, y_tr)
        for stream, (x, y) in (("train", own), ("test", (x_te, y_te))):
            ds = TensorDataset(x, y, task, transform=transform)
            streams[stream].append(Experience(ds, i, task, classes, stream))
    bm = Benchmark(
        Stream("train", streams["train"]),
        Stream("test", streams["test"]),
        name,
        len(classes),
        task_labels,
        dict(info or {}),
    )
    return reserve_validation(bm, validation_experiences)


def permuted(
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    n_experiences: int,
    *,
    seed: int,
    name: str,
    train_subset: int | None = None,
    scale: float | None = None,
    task_labels: bool = False,
    flatten: bool = True,
    standardize: bool = False,
    validation_experiences: int = 0,
    fresh_subset: bool = False,
) -> Benchmark:
    """One fixed random pixel permutation per experience (the first one permuted too).

    Single head, the same classes in every experience. `train_subset` keeps that many
    training samples (the same ones in every experience), as the A-GEM authors' code did
    from February 2019 (1,000, for the tiny-memories paper); the ICLR'19 A-GEM paper
    trained on every sample. `fresh_subset` draws another `train_subset` for each
    experience, as that later code did (each task shuffled its training set and kept the
    first examples). The seed fixes the subsets and the permutations. `standardize` uses
    the mean and std of the (subsets of the) training pixels.
    """
    _check_counts(n_experiences)
    if fresh_subset and train_subset is None:
        raise ValueError("fresh_subset needs a train_subset to draw for each experience")
    g = torch.Generator().manual_seed(seed)
    x_tr, y_tr = take_subset(*train, train_subset, g)
    n_features = int(x_tr[0].numel())
    perms = [torch.randperm(n_features, generator=g) for _ in range(n_experiences)]
    own: list[tuple[Tensor, Tensor]] | None = None
    if fresh_subset:  # experience 0 keeps the subset above; the others draw their own
        own = [(x_tr, y_tr)]
        own += [take_subset(*train, train_subset, g) for _ in range(n_experiences - 1)]
        x_tr, y_tr = torch.cat([x for x, _ in own]), torch.cat([y for _, y in own])
    stats = _stats(x_tr, standardize, scale)
    transforms = [PixelPermutation(p, scale=scale, flatten=flatten, **stats) for p in perms]
    info = {"seed": seed, "permutations": [p.tolist() for p in perms]}
    return domain_incremental(
        (x_tr, y_tr),
        test,
        transforms,
        name=name,
        task_labels=task_labels,
        info=info,
        validation_experiences=validation_experiences,
        train_per_experience=own,
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
    standardize: bool = False,
    validation_experiences: int = 0,
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
    transform = ToFloat(flatten=flatten, scale=scale, **_stats(x_tr, standardize, scale))
    n_labels = int(max(int(y_tr.max()), int(y_te.max()) if y_te.numel() else 0)) + 1
    streams: dict[str, list[Experience]] = {"train": [], "test": []}
    for i, group in enumerate(groups):
        group_t = torch.tensor(group)
        for stream, (x, y) in (("train", (x_tr, y_tr)), ("test", (x_te, y_te))):
            idx = torch.nonzero(torch.isin(y, group_t)).flatten()
            yy = y[idx]
            if task_labels:
                remap = torch.full((n_labels,), -1, dtype=torch.long)
                remap[group_t] = torch.arange(len(group))
                yy = remap[yy]
            ds = TensorDataset(x[idx], yy, i if task_labels else 0, transform=transform)
            classes = tuple(range(len(group))) if task_labels else tuple(sorted(group))
            streams[stream].append(Experience(ds, i, i if task_labels else 0, classes, stream))
    bm = Benchmark(
        Stream("train", streams["train"]),
        Stream("test", streams["test"]),
        name,
        len(all_classes),
        task_labels,
        {"seed": seed, "class_order": order, "classes_per_experience": groups},
    )
    return reserve_validation(bm, validation_experiences)


def _renumbered(stream: Stream, start: int, stop: int, task_labels: bool) -> Stream:
    exps = []
    for exp in stream[start:stop]:
        index = exp.current_experience - start
        ds, task = exp.dataset, exp.task_label
        if task_labels:
            if not isinstance(ds, TensorDataset):
                raise TypeError("reserve_validation renumbers task labels of TensorDatasets only")
            task = task - start
            ds = TensorDataset(ds.x, ds.y, ds.t - start, transform=ds.transform)
        exps.append(dataclasses.replace(exp, dataset=ds, current_experience=index, task_label=task))
    return Stream(stream.name, exps)


def reserve_validation(benchmark: Benchmark, k: int) -> Benchmark:
    """Hold out the first `k` experiences for hyperparameter search.

    Returns a benchmark of the other `n - k` experiences; `info["validation"]` is a
    benchmark of the first `k`. Each is self-contained: experiences (and, with task
    labels, task labels) are numbered from 0, class ids are unchanged, per-experience
    `info` lists are cut to match. The A-GEM paper cross-validates on 3 of 20 tasks
    and reports the other 17. `k = 0` returns `benchmark` itself.
    """
    n = benchmark.n_experiences
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < n:
        raise ValueError(
            f"validation_experiences must be an integer in 0..{n - 1} "
            f"(the benchmark has {n} experiences), got {k!r}"
        )
    if k == 0:
        return benchmark
    info = benchmark.info

    def cut(lo: int, hi: int) -> dict[str, Any]:
        out = {key: (v[lo:hi] if key in PER_EXPERIENCE_INFO else v) for key, v in info.items()}
        out.update(first_experience=lo, source_experiences=n)
        return out

    def part(lo: int, hi: int, name: str) -> Benchmark:
        return Benchmark(
            _renumbered(benchmark.train_stream, lo, hi, benchmark.task_labels),
            _renumbered(benchmark.test_stream, lo, hi, benchmark.task_labels),
            name,
            benchmark.n_classes,
            benchmark.task_labels,
            cut(lo, hi),
        )

    validation = part(0, k, f"{benchmark.name}/validation")
    main = part(k, n, benchmark.name)
    main.info["validation"] = validation
    main.info["validation_experiences"] = k
    return main
