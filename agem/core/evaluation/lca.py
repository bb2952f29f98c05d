"""The LCA probe: accuracy on the current experience's test set before its first minibatch
and after each of its first `beta` minibatches (Chaudhry et al.'s learning curve area).

A probe evaluates a fixed random subset of at most `test_size` test samples (the same
subset for every run and seed, chosen from the experience index) through the strategy's
own `eval`. The correct counts stay on the device until the experience ends.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from agem.benchmarks.streams import Experience, as_tensor_dataset

LCA_ORIGIN = "lca"  # `origin_stream` of the capped test experiences used for LCA curves
_SUBSET_SEED = 20190101  # fixed: every run probes the same test samples


class LCAProbe:
    """The probes of the experience being trained, and the capped test sets (cached)."""

    def __init__(self, *, beta: int | None, test_size: int | None) -> None:
        self.beta = beta
        self.test_size = test_size
        self.experience: Experience | None = None  # the capped test set probed now
        self.left = 0  # probes still due after minibatches
        self.seconds = 0.0  # spent probing during the current experience
        self.size = 0  # test samples per probe
        self.points: list[Tensor] = []  # correct counts, on the device
        self._cache: dict[int, Experience] = {}

    def capped(self, k: int, test: Experience | None) -> Experience | None:
        """Experience k's test set `test`, capped to `test_size` samples (cached)."""
        if k in self._cache:
            return self._cache[k]
        if test is None:
            return None
        dataset: Dataset[Any] = test.dataset
        n = len(test)
        if self.test_size is not None and n > self.test_size:
            g = torch.Generator().manual_seed(_SUBSET_SEED + k)
            idx = torch.randperm(n, generator=g)[: self.test_size].sort().values
            tensors = as_tensor_dataset(dataset)
            dataset = tensors.subset(idx) if tensors is not None else Subset(dataset, idx.tolist())
        probe = Experience(dataset, k, test.task_label, test.classes_in_this_experience, LCA_ORIGIN)
        self._cache[k] = probe
        return probe

    def forget(self, k: int) -> None:
        """Drop experience k's capped test set (its test set changed)."""
        self._cache.pop(k, None)

    def start(self, experience: Experience | None) -> None:
        """A new training experience, probed on `experience` (None: not probed)."""
        self.seconds = 0.0
        self.points = []
        self.left = 0
        self.experience = experience

    def record(self, correct: Tensor, count: int, seconds: float) -> None:
        """One probe's correct count (on the device), samples and time."""
        self.points.append(correct)
        self.size = count
        self.seconds += seconds

    def curve(self) -> list[float] | None:
        """The experience's curve (read back once; padded when it had fewer than `beta`
        minibatches), or None when it was not probed. Ends the experience's probing."""
        self.left = 0
        if not self.points:
            return None
        n = max(self.size, 1)
        curve = [c / n for c in torch.stack(self.points).tolist()]
        curve += [curve[-1]] * ((self.beta or 0) + 1 - len(curve))
        self.points = []
        return curve
