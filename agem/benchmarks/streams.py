"""Experiences, streams and benchmarks: plain, indexable sequences of data.

A `Benchmark` is two `Stream`s (train and test) of `Experience`s. A stream is an
immutable sequence: it can be indexed, sliced and iterated any number of times.
Tensor-backed experiences use `TensorDataset`, which the training loop minibatches by
slicing tensors (no per-sample collate); any other map-style `Dataset` goes through a
`DataLoader`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import torch
from torch import Tensor
from torch.utils.data import Dataset

BatchTransform = Callable[[Tensor], Tensor]


class TensorDataset(Dataset[tuple[Tensor, Tensor, Tensor]]):
    """Inputs, integer labels and task labels held as tensors of equal length.

    `transform`, if given, maps a *batch* of raw inputs to model inputs (for example
    uint8 images to float32 in [0, 1], or a fixed pixel permutation). It lets many
    experiences share one stored copy of the data; it must act row-wise, so that
    transforming a batch equals transforming each sample.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        t: Tensor | int = 0,
        *,
        transform: BatchTransform | None = None,
    ) -> None:
        if not isinstance(x, Tensor) or not isinstance(y, Tensor):
            raise TypeError("TensorDataset needs tensors x and y")
        if y.dim() != 1:
            raise ValueError(f"labels must be a 1-d tensor, got shape {tuple(y.shape)}")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
        if y.dtype.is_floating_point or y.dtype == torch.bool:
            raise ValueError(f"labels must be integers, got dtype {y.dtype}")
        if isinstance(t, int):
            t = torch.full_like(y, t, dtype=torch.long)
        if t.shape != y.shape:
            raise ValueError(f"task labels have shape {tuple(t.shape)}, labels {tuple(y.shape)}")
        self.x = x
        self.y = y.long()
        self.t = t.long()
        self.transform = transform

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        x = self.x[index]
        if self.transform is not None:
            x = self.transform(x.unsqueeze(0))[0]
        return x, self.y[index], self.t[index]

    def batch(self, index: Tensor | slice) -> tuple[Tensor, Tensor, Tensor]:
        """Return the samples at `index` (a tensor of indices or a slice), as batches."""
        x = self.x[index]
        if self.transform is not None:
            x = self.transform(x)
        return x, self.y[index], self.t[index]

    def subset(self, index: Tensor) -> TensorDataset:
        """A new dataset holding the samples at `index`, sharing the transform."""
        return TensorDataset(self.x[index], self.y[index], self.t[index], transform=self.transform)


def as_tensor_dataset(dataset: Dataset[Any]) -> TensorDataset | None:
    """The dataset as a `TensorDataset` if it is tensor-backed (ours or torch's), else None."""
    if isinstance(dataset, TensorDataset):
        return dataset
    if isinstance(dataset, torch.utils.data.TensorDataset) and len(dataset.tensors) in (2, 3):
        x, y, *rest = dataset.tensors
        return TensorDataset(x, y, rest[0] if rest else 0)
    return None


@dataclass(frozen=True)
class Experience:
    """One step of a continual-learning stream.

    Attributes:
        dataset: map-style dataset yielding (x, y) or (x, y, task_label).
        current_experience: index of this experience in its stream.
        task_label: the task label of every sample (0 for single-task benchmarks).
        classes_in_this_experience: sorted class ids present in `dataset`.
        origin_stream: name of the stream the experience belongs to ("train"/"test").
    """

    dataset: Dataset[Any]
    current_experience: int
    task_label: int = 0
    classes_in_this_experience: tuple[int, ...] = ()
    origin_stream: str = "train"

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]


class Stream(Sequence[Experience]):
    """An immutable sequence of experiences; indexing with a slice gives a Stream."""

    def __init__(self, name: str, experiences: Sequence[Experience]) -> None:
        self.name = name
        self._experiences = tuple(experiences)
        for exp in self._experiences:
            if not isinstance(exp, Experience):
                raise TypeError(f"stream {name!r} holds a {type(exp).__name__}, not an Experience")

    @overload
    def __getitem__(self, index: int) -> Experience: ...
    @overload
    def __getitem__(self, index: slice) -> Stream: ...
    def __getitem__(self, index: int | slice) -> Experience | Stream:
        if isinstance(index, slice):
            return Stream(self.name, self._experiences[index])
        return self._experiences[index]

    def __len__(self) -> int:
        return len(self._experiences)

    def __iter__(self) -> Iterator[Experience]:
        return iter(self._experiences)

    def __repr__(self) -> str:
        return f"Stream({self.name!r}, {len(self)} experiences)"


@dataclass(frozen=True)
class Benchmark:
    """A train stream and a test stream of equal length, plus descriptive metadata."""

    train_stream: Stream
    test_stream: Stream
    name: str = "custom"
    n_classes: int = 0
    task_labels: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.train_stream) != len(self.test_stream):
            raise ValueError(
                f"train stream has {len(self.train_stream)} experiences, "
                f"test stream {len(self.test_stream)}"
            )

    @property
    def n_experiences(self) -> int:
        return len(self.train_stream)


def _unpack(item: Any, where: str) -> tuple[Tensor, Tensor, Tensor | int]:
    if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
        raise ValueError(f"{where}: expected (x, y) or (x, y, t), got {type(item).__name__}")
    x, y = torch.as_tensor(item[0]), torch.as_tensor(item[1])
    t = item[2] if len(item) == 3 else 0
    if not isinstance(t, int):
        t = torch.as_tensor(t)
    return x, y, t


def _classes(y: Tensor) -> tuple[int, ...]:
    return tuple(int(c) for c in torch.unique(y).tolist())


def _task_of(t: Tensor | int) -> int:
    if isinstance(t, int):
        return t
    values = torch.unique(t)
    return int(values[0]) if values.numel() == 1 else -1


def _experience(
    dataset: Dataset[Any], index: int, stream: str, classes: tuple[int, ...], task: int
) -> Experience:
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError(f"{stream} experience {index} has no samples")
    return Experience(dataset, index, task, classes, stream)


def _stream_from_tensors(items: Sequence[Any], name: str) -> Stream:
    exps = []
    for i, item in enumerate(items):
        x, y, t = _unpack(item, f"{name} experience {i}")
        ds = TensorDataset(x, y, t)
        exps.append(_experience(ds, i, name, _classes(ds.y), _task_of(t)))
    return Stream(name, exps)


def from_tensors(*, train: Sequence[Any], test: Sequence[Any], name: str = "custom") -> Benchmark:
    """Build a benchmark from per-experience tensors `(x, y)` or `(x, y, t)`.

    `t` is an int (one task label for the experience) or a tensor of per-sample labels.
    """
    train_stream = _stream_from_tensors(train, "train")
    test_stream = _stream_from_tensors(test, "test")
    classes = {c for exp in train_stream for c in exp.classes_in_this_experience}
    tasks = {exp.task_label for exp in train_stream}
    return Benchmark(train_stream, test_stream, name, len(classes), len(tasks) > 1)


def _dataset_classes(dataset: Dataset[Any]) -> tuple[tuple[int, ...], int]:
    tensors = as_tensor_dataset(dataset)
    if tensors is not None:
        return _classes(tensors.y), _task_of(tensors.t)
    ys, ts = set(), set()
    for i in range(len(dataset)):  # type: ignore[arg-type]
        item = dataset[i]
        ys.add(int(item[1]))
        ts.add(int(item[2]) if len(item) == 3 else 0)
    return tuple(sorted(ys)), (ts.pop() if len(ts) == 1 else -1)


def _stream_from_datasets(items: Sequence[Any], name: str) -> Stream:
    exps = []
    for i, ds in enumerate(items):
        if not isinstance(ds, Dataset):
            raise TypeError(f"{name} experience {i} is a {type(ds).__name__}, not a Dataset")
        if len(ds) == 0:  # type: ignore[arg-type]
            raise ValueError(f"{name} experience {i} has no samples")
        classes, task = _dataset_classes(ds)
        exps.append(_experience(ds, i, name, classes, task))
    return Stream(name, exps)


def from_datasets(
    *, train: Sequence[Dataset[Any]], test: Sequence[Dataset[Any]], name: str = "custom"
) -> Benchmark:
    """Build a benchmark from one map-style Dataset per experience.

    Each dataset yields `(x, y)` or `(x, y, t)`. Classes are read once, here.
    """
    train_stream = _stream_from_datasets(train, "train")
    test_stream = _stream_from_datasets(test, "test")
    classes = {c for exp in train_stream for c in exp.classes_in_this_experience}
    tasks = {exp.task_label for exp in train_stream}
    return Benchmark(train_stream, test_stream, name, len(classes), len(tasks) > 1)
