"""Experiences, streams and benchmarks built from tensors or datasets."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from agem.benchmarks import (
    Benchmark,
    Experience,
    Stream,
    TensorDataset,
    from_datasets,
    from_tensors,
    split_digits,
)


def _data(n: int, classes: list[int], seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.tensor(classes)[torch.randint(0, len(classes), (n,), generator=g)]
    y[: len(classes)] = torch.tensor(classes)  # every class present
    return torch.randn(n, 3, generator=g), y


def _bm() -> Benchmark:
    train = [_data(8, [2 * i, 2 * i + 1], i) for i in range(4)]
    test = [_data(5, [2 * i, 2 * i + 1], 10 + i) for i in range(4)]
    return from_tensors(train=train, test=test)


def test_stream_iterates_twice_and_independently() -> None:
    stream = _bm().train_stream
    first = list(stream)
    second = list(stream)
    assert len(first) == 4 and all(a is b for a, b in zip(first, second, strict=True))
    pairs = [(a.current_experience, b.current_experience) for a in stream for b in stream]
    assert pairs == [(i, j) for i in range(4) for j in range(4)]


def test_stream_indexing_and_slicing() -> None:
    stream = _bm().test_stream
    assert len(stream) == 4 and stream.name == "test"
    assert stream[-1] is stream[3] and stream[-1].current_experience == 3
    part = stream[1:3]
    assert isinstance(part, Stream) and part.name == "test" and len(part) == 2
    assert [e.current_experience for e in part] == [1, 2]  # indices keep their origin
    assert part[0] is stream[1]
    assert [e.current_experience for e in stream[::-2]] == [3, 1]
    assert list(part) == list(part)  # slices are re-iterable too
    with pytest.raises(IndexError):
        stream[4]


def test_experience_fields() -> None:
    bm = _bm()
    exp = bm.train_stream[2]
    assert exp.current_experience == 2 and exp.task_label == 0
    assert exp.classes_in_this_experience == (4, 5)
    assert exp.origin_stream == "train" and bm.test_stream[2].origin_stream == "test"
    assert len(exp) == len(exp.dataset) == 8
    x, y, t = exp.dataset[0]
    assert x.shape == (3,) and y.dtype == torch.long and int(t) == 0
    assert bm.n_experiences == 4 and bm.n_classes == 8 and bm.task_labels is False


def test_task_labels_int_or_per_sample() -> None:
    x, y = _data(6, [0, 1], 0)
    bm = from_tensors(train=[(x, y, 0), (x, y, 1)], test=[(x, y, 0), (x, y, 1)])
    assert [e.task_label for e in bm.train_stream] == [0, 1] and bm.task_labels
    mixed = torch.tensor([0, 1, 0, 1, 0, 1])
    bm = from_tensors(train=[(x, y, mixed)], test=[(x, y, mixed)])
    exp = bm.train_stream[0]
    assert exp.task_label == -1  # mixed task labels in one experience
    assert torch.equal(exp.dataset.t, mixed)


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[tuple]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple:
        return self.items[i]


def test_from_datasets_reads_classes_and_task_labels() -> None:
    a = ListDataset([(torch.zeros(2), 3), (torch.ones(2), 1)])
    b = ListDataset([(torch.zeros(2), 0, 4), (torch.ones(2), 2, 4)])
    bm = from_datasets(train=[a, b], test=[a, b])
    assert bm.train_stream[0].classes_in_this_experience == (1, 3)
    assert bm.train_stream[0].task_label == 0
    assert bm.train_stream[1].classes_in_this_experience == (0, 2)
    assert bm.train_stream[1].task_label == 4
    assert bm.train_stream[1].dataset is b


def test_bad_streams_and_datasets() -> None:
    x, y = _data(4, [0, 1], 0)
    with pytest.raises(ValueError, match="train experience 1 has no samples"):
        from_tensors(train=[(x, y), (x[:0], y[:0])], test=[(x, y), (x, y)])
    with pytest.raises(ValueError, match="test experience 0 has no samples"):
        from_datasets(train=[ListDataset([(x[0], 0)])], test=[ListDataset([])])
    with pytest.raises(TypeError, match="train experience 0 is a list, not a Dataset"):
        from_datasets(train=[[(x[0], 0)]], test=[ListDataset([(x[0], 0)])])
    with pytest.raises(ValueError, match=r"expected \(x, y\) or \(x, y, t\)"):
        from_tensors(train=[x], test=[x])
    with pytest.raises(ValueError, match="train stream has 2 experiences, test stream 1"):
        from_tensors(train=[(x, y), (x, y)], test=[(x, y)])
    with pytest.raises(TypeError, match="not an Experience"):
        Stream("train", [TensorDataset(x, y)])  # type: ignore[list-item]


def test_tensor_dataset_validation() -> None:
    x, y = _data(4, [0, 1], 0)
    with pytest.raises(ValueError, match="x has 4 samples but y has 3"):
        TensorDataset(x, y[:3])
    with pytest.raises(ValueError, match="labels must be integers"):
        TensorDataset(x, y.float())
    with pytest.raises(ValueError, match="labels must be a 1-d tensor"):
        TensorDataset(x, y[:, None])
    with pytest.raises(ValueError, match="task labels have shape"):
        TensorDataset(x, y, torch.zeros(3, dtype=torch.long))


def test_tensor_dataset_transform_is_row_wise() -> None:
    x = torch.arange(12, dtype=torch.uint8).reshape(4, 3)
    ds = TensorDataset(x, torch.zeros(4, dtype=torch.long), transform=lambda b: b.float() * 2)
    xb, _, _ = ds.batch(torch.tensor([2, 0]))
    assert torch.equal(xb, torch.stack([ds[2][0], ds[0][0]]))
    assert ds[1][0].dtype == torch.float32


def test_embedded_split_digits() -> None:
    bm = split_digits(n_experiences=5, seed=0)
    assert bm.n_experiences == 5 and bm.n_classes == 10
    seen = [c for e in bm.train_stream for c in e.classes_in_this_experience]
    assert sorted(seen) == list(range(10))
    exp = bm.train_stream[0]
    x, _, _ = exp.dataset.batch(slice(0, 4))
    assert x.shape == (4, 64) and x.dtype == torch.float32 and 0.0 <= float(x.min())
    assert float(x.max()) <= 1.0
    assert isinstance(exp, Experience)
