"""Minibatching: the tensor fast path and the DataLoader path give the same batches."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

import agem
from agem.benchmarks import Experience, TensorDataset
from agem.core.batching import batches
from agem.plugins import Plugin

CPU = torch.device("cpu")


class Wrapped(torch.utils.data.Dataset):
    """A plain map-style Dataset (not tensor-backed) over the same samples."""

    def __init__(self, inner: TensorDataset, *, with_task: bool = True) -> None:
        self.inner = inner
        self.with_task = with_task

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        x, y, t = self.inner[i]
        return (x, int(y), int(t)) if self.with_task else (x, int(y))


def _data(n: int = 10, *, transform: Any = None) -> TensorDataset:
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (n, 2, 3), generator=g, dtype=torch.uint8)
    if transform is None:
        x = x.float() / 255
    y = torch.randint(0, 4, (n,), generator=g)
    t = torch.randint(0, 2, (n,), generator=g)
    return TensorDataset(x, y, t, transform=transform)


def _collect(dataset: Any, seed: int, *, shuffle: bool = True, epochs: int = 2, **kw: Any) -> list:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(epochs):
        out.append(list(batches(dataset, 4, shuffle=shuffle, generator=g, device=CPU, **kw)))
    return out


def _assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for epoch_a, epoch_b in zip(a, b, strict=True):
        assert len(epoch_a) == len(epoch_b)
        for ba, bb in zip(epoch_a, epoch_b, strict=True):
            for ta, tb in zip(ba, bb, strict=True):
                assert ta.dtype == tb.dtype and torch.equal(ta, tb)


def _scale(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).float() / 255


@pytest.mark.parametrize("transform", [None, _scale])
def test_fast_path_and_loader_path_give_identical_batches(transform: Any) -> None:
    data = _data(transform=transform)
    fast = _collect(data, seed=7)
    slow = _collect(Wrapped(data), seed=7)
    _assert_same(fast, slow)
    assert [b[0].shape[0] for b in fast[0]] == [4, 4, 2]  # the last partial batch is kept
    # each epoch is a fresh permutation of every sample
    for epoch in fast:
        assert sorted(torch.cat([b[1] for b in epoch]).tolist()) == sorted(data.y.tolist())
    assert not torch.equal(fast[0][0][1], fast[1][0][1]) or not torch.equal(
        fast[0][1][1], fast[1][1][1]
    )
    # torch's own TensorDataset takes the fast path too
    plain = torch.utils.data.TensorDataset(data.x, data.y, data.t)
    if transform is None:
        _assert_same(_collect(plain, seed=7), fast)


def test_unshuffled_batches_keep_dataset_order() -> None:
    data = _data()
    fast = _collect(data, seed=0, shuffle=False, epochs=1)[0]
    slow = _collect(Wrapped(data), seed=0, shuffle=False, epochs=1)[0]
    _assert_same([fast], [slow])
    assert torch.equal(torch.cat([b[1] for b in fast]), data.y)


def test_loader_path_fills_in_the_default_task_label() -> None:
    data = _data()
    got = _collect(Wrapped(data, with_task=False), seed=1, epochs=1, default_task=5)[0]
    assert all(torch.equal(b[2], torch.full_like(b[1], 5)) for b in got)
    assert all(b[1].dtype == torch.long and b[2].dtype == torch.long for b in got)


class BatchLog(Plugin):
    def __init__(self) -> None:
        self.batches: list[list[Tensor]] = []

    def before_forward(self, strategy: Any, **kwargs: Any) -> None:
        self.batches.append([strategy.mb_x.clone(), strategy.mb_y.clone()])


def _train(dataset: Any, **train_kwargs: Any) -> tuple[BatchLog, list[Tensor]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 4))
    log = BatchLog()
    strategy = agem.Naive(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=4,
        train_epochs=2,
        plugins=[log],
        seed=11,
    )
    strategy.train(Experience(dataset, 0, classes_in_this_experience=(0, 1, 2, 3)), **train_kwargs)
    return log, [p.detach().clone() for p in model.parameters()]


def _same_training(a: tuple[BatchLog, list[Tensor]], b: tuple[BatchLog, list[Tensor]]) -> None:
    assert len(a[0].batches) == len(b[0].batches) == 6
    for ba, bb in zip(a[0].batches, b[0].batches, strict=True):
        assert all(torch.equal(u, v) for u, v in zip(ba, bb, strict=True))
    assert all(torch.equal(u, v) for u, v in zip(a[1], b[1], strict=True))


def test_strategy_trains_identically_on_both_paths() -> None:
    data = _data()
    _same_training(_train(data), _train(Wrapped(data)))


def test_loader_path_with_worker_processes() -> None:
    data = _data()
    _same_training(_train(data), _train(Wrapped(data), num_workers=2))
