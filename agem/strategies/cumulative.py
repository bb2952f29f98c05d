"""`Cumulative`: retrain on every experience seen so far (the joint-training upper bound)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset

from agem.benchmarks.streams import Experience, TensorDataset, as_tensor_dataset
from agem.core.template import BaseTemplate


class _WithTask(Dataset[tuple[Any, Any, Any]]):
    """Items of `dataset` as (x, y, t), with `task` for datasets that yield (x, y)."""

    def __init__(self, dataset: Dataset[Any], task: int) -> None:
        self.dataset = dataset
        self.task = task

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any, Any]:
        item = self.dataset[index]
        return item[0], item[1], (item[2] if len(item) > 2 else self.task)


def _inputs(data: TensorDataset) -> Tensor:
    """The dataset's model inputs (its transform applied to all of it)."""
    return data.transform(data.x) if data.transform is not None else data.x


def _same_layout(xs: list[Tensor]) -> bool:
    first = xs[0]
    return all(x.shape[1:] == first.shape[1:] and x.dtype == first.dtype for x in xs)


def concat_experiences(parts: Sequence[tuple[Dataset[Any], int]]) -> Dataset[Any]:
    """The union of datasets, each with its default task label, as one dataset.

    Tensor-backed datasets are concatenated into one `TensorDataset` (kept on the fast
    path): their raw tensors when they share one transform object, otherwise their
    transformed inputs (each experience's own transform, e.g. its pixel permutation,
    applied before concatenating). Anything else becomes a `ConcatDataset`.
    """
    if not parts:
        raise ValueError("concat_experiences needs at least one dataset")
    tensors = [as_tensor_dataset(d) for d, _ in parts]
    if all(t is not None for t in tensors):
        data = [t for t in tensors if t is not None]
        if len(data) == 1:
            return data[0]
        ys = torch.cat([d.y for d in data])
        ts = torch.cat([d.t for d in data])
        transform = data[0].transform
        if all(d.transform is transform for d in data) and _same_layout([d.x for d in data]):
            return TensorDataset(torch.cat([d.x for d in data]), ys, ts, transform=transform)
        xs = [_inputs(d) for d in data]
        if _same_layout(xs):
            return TensorDataset(torch.cat(xs), ys, ts)
    return ConcatDataset([_WithTask(d, task) for d, task in parts])


class Cumulative(BaseTemplate):
    """Train on experience k with the union of the training data of experiences 0..k.

    Experiences are remembered by `current_experience` (training one again replaces its
    data); the union is taken in experience order. The model is not reset between
    experiences. Same arguments as `BaseTemplate`. The remembered datasets are not part
    of `state_dict()` (they are the benchmark's own data).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        criterion: torch.nn.Module | None = None,
        train_mb_size: int = 1,
        train_epochs: int = 1,
        eval_mb_size: int | None = None,
        device: str | torch.device = "cpu",
        plugins: Sequence[Any] | None = None,
        evaluator: Any = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            model,
            optimizer,
            criterion=criterion,
            train_mb_size=train_mb_size,
            train_epochs=train_epochs,
            eval_mb_size=eval_mb_size,
            device=device,
            plugins=list(plugins or []),
            evaluator=evaluator,
            seed=seed,
        )
        self.seen_experiences: dict[int, Experience] = {}

    def resume_trained(self, experiences: Sequence[Experience]) -> None:
        """The data seen so far is the experiences already trained (not in a checkpoint)."""
        self.seen_experiences = {e.current_experience: e for e in experiences}

    def train_dataset_adaptation(self, experience: Experience) -> Dataset[Any]:
        """The union of the training data of every experience seen so far, this one included."""
        self.seen_experiences[experience.current_experience] = experience
        parts = [
            (e.dataset, max(e.task_label, 0)) for _, e in sorted(self.seen_experiences.items())
        ]
        return concat_experiences(parts)
