"""Permuted and split MNIST / Fashion-MNIST, from the real IDX files.

The files are found on disk or downloaded (see `agem.data`); the images are kept once
as uint8 [n, 1, 28, 28] and turned into float32 in [0, 1] per minibatch, flattened to
784 features unless `flatten=False`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from agem.benchmarks.protocols import permuted, split
from agem.benchmarks.streams import Benchmark

MNIST_LIKE = ("mnist", "fashion-mnist")


def load_mnist_tensors(
    dataset: str = "mnist", *, root: str | Path | None = None, download: bool = True
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """((x_train, y_train), (x_test, y_test)): uint8 images [n, 1, 28, 28], long labels.

    `dataset` is "mnist" or "fashion-mnist"; `root`/`download` as in `agem.data.fetch`.
    """
    from agem.data import load

    if dataset not in MNIST_LIKE:
        raise ValueError(f"dataset must be one of {', '.join(MNIST_LIKE)}, got {dataset!r}")
    (x_tr, y_tr), (x_te, y_te) = load(dataset, root=root, download=download)
    return (
        (torch.from_numpy(x_tr).unsqueeze(1), torch.from_numpy(y_tr)),
        (torch.from_numpy(x_te).unsqueeze(1), torch.from_numpy(y_te)),
    )


def _permuted(
    dataset: str,
    name: str,
    n_experiences: int,
    *,
    seed: int,
    train_subset: int | None,
    root: str | Path | None,
    download: bool,
    task_labels: bool,
    flatten: bool,
    standardize: bool,
    validation_experiences: int,
    fresh_subset: bool = False,
) -> Benchmark:
    train, test = load_mnist_tensors(dataset, root=root, download=download)
    return permuted(
        train,
        test,
        n_experiences,
        seed=seed,
        name=name,
        train_subset=train_subset,
        task_labels=task_labels,
        flatten=flatten,
        standardize=standardize,
        validation_experiences=validation_experiences,
        fresh_subset=fresh_subset,
    )


def permuted_mnist(
    n_experiences: int = 20,
    *,
    seed: int = 0,
    train_subset: int | None = None,
    root: str | Path | None = None,
    download: bool = True,
    task_labels: bool = False,
    flatten: bool = True,
    standardize: bool = False,
    validation_experiences: int = 0,
    fresh_subset: bool = False,
) -> Benchmark:
    """Permuted MNIST: one fixed random pixel permutation per experience (the first
    permuted too, as in the A-GEM paper), single head, the same 10 classes.

    The seed fixes the permutations and the `train_subset` (the same training samples
    in every experience; `fresh_subset=True`: another subset per experience).
    `validation_experiences=k` moves the first k experiences to
    `benchmark.info["validation"]` (A-GEM: 20 experiences, k=3, 17 reported).
    """
    return _permuted(
        "mnist",
        "permuted_mnist",
        n_experiences,
        seed=seed,
        train_subset=train_subset,
        root=root,
        download=download,
        task_labels=task_labels,
        flatten=flatten,
        standardize=standardize,
        validation_experiences=validation_experiences,
        fresh_subset=fresh_subset,
    )


def permuted_fashion_mnist(
    n_experiences: int = 20,
    *,
    seed: int = 0,
    train_subset: int | None = None,
    root: str | Path | None = None,
    download: bool = True,
    task_labels: bool = False,
    flatten: bool = True,
    standardize: bool = False,
    validation_experiences: int = 0,
    fresh_subset: bool = False,
) -> Benchmark:
    """Permuted Fashion-MNIST: as `permuted_mnist`, on Zalando's Fashion-MNIST."""
    return _permuted(
        "fashion-mnist",
        "permuted_fashion_mnist",
        n_experiences,
        seed=seed,
        train_subset=train_subset,
        root=root,
        download=download,
        task_labels=task_labels,
        flatten=flatten,
        standardize=standardize,
        validation_experiences=validation_experiences,
        fresh_subset=fresh_subset,
    )


def _split(
    dataset: str,
    name: str,
    n_experiences: int,
    *,
    seed: int,
    task_labels: bool,
    fixed_class_order: Sequence[int] | None,
    root: str | Path | None,
    download: bool,
    flatten: bool,
    standardize: bool,
    validation_experiences: int,
) -> Benchmark:
    train, test = load_mnist_tensors(dataset, root=root, download=download)
    return split(
        train,
        test,
        n_experiences,
        seed=seed,
        name=name,
        task_labels=task_labels,
        fixed_class_order=fixed_class_order,
        flatten=flatten,
        standardize=standardize,
        validation_experiences=validation_experiences,
    )


def split_mnist(
    n_experiences: int = 5,
    *,
    seed: int = 0,
    task_labels: bool = False,
    fixed_class_order: Sequence[int] | None = None,
    root: str | Path | None = None,
    download: bool = True,
    flatten: bool = True,
    standardize: bool = False,
    validation_experiences: int = 0,
) -> Benchmark:
    """Split MNIST: the 10 digits in `n_experiences` equal groups (class order fixed by
    `seed`, or `fixed_class_order`). Class-incremental by default; `task_labels=True`
    gives experience i task label i and class ids 0..k-1 within it (multi-head)."""
    return _split(
        "mnist",
        "split_mnist",
        n_experiences,
        seed=seed,
        task_labels=task_labels,
        fixed_class_order=fixed_class_order,
        root=root,
        download=download,
        flatten=flatten,
        standardize=standardize,
        validation_experiences=validation_experiences,
    )


def split_fashion_mnist(
    n_experiences: int = 5,
    *,
    seed: int = 0,
    task_labels: bool = False,
    fixed_class_order: Sequence[int] | None = None,
    root: str | Path | None = None,
    download: bool = True,
    flatten: bool = True,
    standardize: bool = False,
    validation_experiences: int = 0,
) -> Benchmark:
    """Split Fashion-MNIST: as `split_mnist`, on Fashion-MNIST's 10 classes."""
    return _split(
        "fashion-mnist",
        "split_fashion_mnist",
        n_experiences,
        seed=seed,
        task_labels=task_labels,
        fixed_class_order=fixed_class_order,
        root=root,
        download=download,
        flatten=flatten,
        standardize=standardize,
        validation_experiences=validation_experiences,
    )
