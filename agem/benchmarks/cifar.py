"""Split CIFAR-10 (5 x 2 classes) and Split CIFAR-100 (20 x 5 classes, the A-GEM
paper's multi-head setting with `task_labels=True`), from the official python files.

Images are kept once as uint8 [n, 3, 32, 32] and given as float32 [3, 32, 32] in
[0, 1] per minibatch (for convolutional models such as the reduced ResNet-18), or
flattened with `flatten=True`; `standardize=True` uses per-channel training statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from agem.benchmarks.protocols import split
from agem.benchmarks.streams import Benchmark


def _tensor(a: np.ndarray) -> Tensor:
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def load_cifar_tensors(
    dataset: str = "cifar10", *, root: str | Path | None = None, download: bool = True
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """((x_train, y_train), (x_test, y_test)): uint8 images [n, 3, 32, 32], long labels.

    `dataset` is "cifar10" or "cifar100" (fine labels).
    """
    from agem.data import load

    if dataset not in ("cifar10", "cifar100"):
        raise ValueError(f"dataset must be 'cifar10' or 'cifar100', got {dataset!r}")
    (x_tr, y_tr), (x_te, y_te) = load(dataset, root=root, download=download)
    return (_tensor(x_tr), _tensor(y_tr)), (_tensor(x_te), _tensor(y_te))


def _split_cifar(
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
    train, test = load_cifar_tensors(dataset, root=root, download=download)
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


def split_cifar10(
    n_experiences: int = 5,
    *,
    seed: int = 0,
    task_labels: bool = False,
    fixed_class_order: Sequence[int] | None = None,
    root: str | Path | None = None,
    download: bool = True,
    flatten: bool = False,
    standardize: bool = False,
    validation_experiences: int = 0,
) -> Benchmark:
    """Split CIFAR-10: 10 classes in `n_experiences` equal groups (5 x 2 by default),
    class order fixed by `seed`; class-incremental unless `task_labels=True`."""
    return _split_cifar(
        "cifar10",
        "split_cifar10",
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


def split_cifar100(
    n_experiences: int = 20,
    *,
    seed: int = 0,
    task_labels: bool = False,
    fixed_class_order: Sequence[int] | None = None,
    root: str | Path | None = None,
    download: bool = True,
    flatten: bool = False,
    standardize: bool = False,
    validation_experiences: int = 0,
) -> Benchmark:
    """Split CIFAR-100: 100 fine classes in `n_experiences` equal groups (20 x 5 by
    default). The A-GEM paper's Split CIFAR is `task_labels=True` (one head per task)
    with `validation_experiences=3`."""
    return _split_cifar(
        "cifar100",
        "split_cifar100",
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
