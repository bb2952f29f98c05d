"""The embedded offline default: the UCI 8x8 handwritten digits (1,797 images).

They ship inside the package (`data/digits.npz`, read with numpy only), so `agem run`
works on a fresh machine without network or extra dependencies. The images (values
0..16) are kept as uint8 and scaled to [0, 1] per minibatch. A fixed,
stratified 70/30 train/test split is drawn once from `split_seed`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from agem.benchmarks.protocols import permuted, split
from agem.benchmarks.streams import Benchmark

DIGITS_SCALE = 16.0
N_DIGITS = 1797
DIGITS_FILE = "digits.npz"


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [1797, 8, 8] in 0..16, labels [1797]) from the file shipped in the package.

    The array file is read with numpy only, so the offline default needs no extra
    dependency; its origin and licence are in `agem/benchmarks/data/README.md`.
    """
    from importlib.resources import files

    resource = files("agem.benchmarks") / "data" / DIGITS_FILE
    with resource.open("rb") as f, np.load(f, allow_pickle=False) as arrays:
        images, labels = arrays["images"], arrays["labels"]
    if images.shape != (N_DIGITS, 8, 8) or labels.shape != (N_DIGITS,) or images.max() > 16:
        raise ValueError(f"the packaged {DIGITS_FILE} is damaged; reinstall agem")
    return images, labels.astype(np.int64)


def load_digits_tensors(
    *, split_seed: int = 0, test_fraction: float = 0.3
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """((x_train, y_train), (x_test, y_test)) with x as uint8 [n, 8, 8] in 0..16."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    images, labels = _digits_arrays()  # read here: no work at agem import time
    x = torch.as_tensor(images, dtype=torch.uint8)
    y = torch.as_tensor(labels, dtype=torch.long)
    g = torch.Generator().manual_seed(split_seed)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        n_test = round(idx.numel() * test_fraction)
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    tr = torch.cat(train_idx).sort().values
    te = torch.cat(test_idx).sort().values
    return (x[tr], y[tr]), (x[te], y[te])


def split_digits(
    n_experiences: int = 5,
    *,
    seed: int = 0,
    task_labels: bool = False,
    fixed_class_order: list[int] | None = None,
    validation_experiences: int = 0,
) -> Benchmark:
    """Digits split by class into `n_experiences` groups (class-incremental by default)."""
    train, test = load_digits_tensors()
    return split(
        train,
        test,
        n_experiences,
        seed=seed,
        name="split_digits",
        task_labels=task_labels,
        fixed_class_order=fixed_class_order,
        scale=DIGITS_SCALE,
        validation_experiences=validation_experiences,
    )


def permuted_digits(
    n_experiences: int = 5,
    *,
    seed: int = 0,
    train_subset: int | None = None,
    task_labels: bool = False,
    validation_experiences: int = 0,
    fresh_subset: bool = False,
) -> Benchmark:
    """Digits with one fixed random pixel permutation (of 64) per experience
    (`fresh_subset`: another `train_subset` per experience, see `permuted`)."""
    train, test = load_digits_tensors()
    return permuted(
        train,
        test,
        n_experiences,
        seed=seed,
        name="permuted_digits",
        train_subset=train_subset,
        scale=DIGITS_SCALE,
        task_labels=task_labels,
        validation_experiences=validation_experiences,
        fresh_subset=fresh_subset,
    )
