"""Rotated MNIST: one fixed rotation angle per experience (GEM's protocol), torch only.

The images are stored once as uint8; each experience rotates its minibatches on the
fly with a precomputed sampling grid (bilinear interpolation, zeros outside), so 20
experiences cost no more memory than one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from agem.benchmarks.mnist import load_mnist_tensors
from agem.benchmarks.protocols import (
    ToFloat,
    _check_counts,
    _stats,
    domain_incremental,
    take_subset,
)
from agem.benchmarks.streams import Benchmark


class Rotation(ToFloat):
    """Batch transform: scale to float, rotate each image by `degrees` counter-clockwise
    (as displayed, row 0 at the top) about its centre, standardise, flatten unless
    `flatten=False`. Inputs are [batch, H, W] or [batch, C, H, W]."""

    def __init__(
        self,
        degrees: float,
        *,
        scale: float | None = None,
        mean: Tensor | float | None = None,
        std: Tensor | float | None = None,
        flatten: bool = True,
    ) -> None:
        super().__init__(flatten=flatten, scale=scale, mean=mean, std=std)
        if not math.isfinite(degrees):
            raise ValueError(f"degrees must be finite, got {degrees}")
        self.degrees = float(degrees)
        self._grids: dict[tuple[int, int, str, torch.dtype], Tensor] = {}

    def _grid(self, h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        key = (h, w, str(device), dtype)
        grid = self._grids.get(key)
        if grid is None:
            import torch.nn.functional as F

            rad = math.radians(self.degrees)
            c, s = math.cos(rad), math.sin(rad)
            # output (x, y) samples input R(theta) (x, y); y points down in image coordinates
            theta = torch.tensor([[[c, -s * h / w, 0.0], [s * w / h, c, 0.0]]], dtype=dtype)
            grid = F.affine_grid(theta, [1, 1, h, w], align_corners=False).to(device)
            self._grids[key] = grid
        return grid

    def _spatial(self, x: Tensor) -> Tensor:
        import torch.nn.functional as F

        if x.dim() not in (3, 4):
            raise ValueError(
                f"Rotation needs [batch, H, W] or [batch, C, H, W], got {list(x.shape)}"
            )
        squeeze = x.dim() == 3
        images = x.unsqueeze(1) if squeeze else x
        b, _, h, w = images.shape
        grid = self._grid(h, w, x.device, x.dtype).expand(b, -1, -1, -1)
        out = F.grid_sample(
            images, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        return out.squeeze(1) if squeeze else out

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_grids"] = {}  # rebuilt on use
        return state


def gem_angles(
    n_experiences: int, *, seed: int, low: float = 0.0, high: float = 180.0
) -> list[float]:
    """GEM's rotation angles: experience i draws its angle uniformly from the i-th of
    `n_experiences` equal slices of [low, high) degrees, from a generator seeded by `seed`.
    """
    _check_counts(n_experiences)
    if not low < high:
        raise ValueError(f"low must be below high, got {low} and {high}")
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n_experiences, generator=g, dtype=torch.float64).tolist()
    width = (high - low) / n_experiences
    return [low + width * (i + ui) for i, ui in enumerate(u)]


def rotated(
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    n_experiences: int,
    *,
    seed: int,
    name: str,
    angles: Sequence[float] | None = None,
    train_subset: int | None = None,
    scale: float | None = None,
    task_labels: bool = False,
    flatten: bool = True,
    standardize: bool = False,
    validation_experiences: int = 0,
) -> Benchmark:
    """One experience per rotation angle over the same stored images (single head).

    `angles` (degrees) default to `gem_angles(n_experiences, seed=seed)`. The seed also
    fixes the `train_subset` (the same samples in every experience).
    """
    _check_counts(n_experiences)
    g = torch.Generator().manual_seed(seed)
    x_tr, y_tr = take_subset(*train, train_subset, g)
    if angles is None:
        angles = gem_angles(n_experiences, seed=seed)
    angles = [float(a) for a in angles]
    if len(angles) != n_experiences:
        raise ValueError(f"angles has {len(angles)} entries for {n_experiences} experiences")
    stats = _stats(x_tr, standardize, scale)
    transforms = [Rotation(a, scale=scale, flatten=flatten, **stats) for a in angles]
    return domain_incremental(
        (x_tr, y_tr),
        test,
        transforms,
        name=name,
        task_labels=task_labels,
        info={"seed": seed, "angles": angles},
        validation_experiences=validation_experiences,
    )


def rotated_mnist(
    n_experiences: int = 20,
    *,
    seed: int = 0,
    train_subset: int | None = None,
    angles: Sequence[float] | None = None,
    root: str | Path | None = None,
    download: bool = True,
    task_labels: bool = False,
    flatten: bool = True,
    standardize: bool = False,
    validation_experiences: int = 0,
) -> Benchmark:
    """Rotated MNIST: experience i rotates every digit by a fixed angle in the i-th
    slice of 0-180 degrees (GEM's protocol; GEM used 20 experiences of 1,000 samples:
    `train_subset=1000`). Inputs are [784] (or [1, 28, 28] with `flatten=False`).
    """
    train, test = load_mnist_tensors("mnist", root=root, download=download)
    return rotated(
        train,
        test,
        n_experiences,
        seed=seed,
        name="rotated_mnist",
        angles=angles,
        train_subset=train_subset,
        task_labels=task_labels,
        flatten=flatten,
        standardize=standardize,
        validation_experiences=validation_experiences,
    )
