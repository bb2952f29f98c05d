"""Cumulative: training on experience k iterates exactly the union of experiences 0..k."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import ConcatDataset, Dataset

import agem
from agem.benchmarks import TensorDataset, from_datasets, from_tensors
from agem.benchmarks.protocols import permuted, split
from agem.plugins import Plugin
from agem.strategies.cumulative import concat_experiences


class _Seen(Plugin):
    """Collects every training sample (x, y, t) iterated, per experience."""

    def __init__(self) -> None:
        self.rows: dict[int, list[torch.Tensor]] = {}

    def before_forward(self, strategy: Any, **kwargs: Any) -> None:
        rows = torch.cat(
            [
                strategy.mb_x.reshape(strategy.mb_x.shape[0], -1).float(),
                strategy.mb_y.unsqueeze(1).float(),
                strategy.mb_task_id.unsqueeze(1).float(),
            ],
            dim=1,
        )
        self.rows.setdefault(strategy.experience.current_experience, []).append(rows)


def _rows(dataset: Dataset[Any]) -> torch.Tensor:
    out = []
    for i in range(len(dataset)):  # type: ignore[arg-type]
        x, y, *t = dataset[i]
        t_val = float(t[0]) if t else 0.0
        out.append(torch.cat([torch.as_tensor(x).reshape(-1).float(), torch.tensor([y, t_val])]))
    return torch.stack(out)


def _same_multiset(a: torch.Tensor, b: torch.Tensor) -> bool:
    ua, ca = torch.unique(a, dim=0, return_counts=True)
    ub, cb = torch.unique(b, dim=0, return_counts=True)
    return torch.equal(ua, ub) and torch.equal(ca, cb)


def _train(bm: Any, epochs: int = 1) -> _Seen:
    first = bm.train_stream[0].dataset[0][0]
    model = agem.models.MLP(int(first.numel()), (8,), 10)
    seen = _Seen()
    s = agem.Cumulative(
        model,
        torch.optim.SGD(model.parameters(), lr=0.05),
        train_mb_size=7,
        train_epochs=epochs,
        plugins=[seen],
        seed=0,
        evaluator=False,
    )
    s.train(bm.train_stream)
    return seen


def _raw(n: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 2, 3), generator=gen, dtype=torch.uint8), torch.arange(n) % 4


def test_permuted_experiences_union_with_each_own_permutation() -> None:
    bm = permuted(_raw(), _raw(8, 1), 3, seed=0, name="p")
    seen = _train(bm)
    for k in range(3):
        union = torch.cat([_rows(bm.train_stream[j].dataset) for j in range(k + 1)])
        got = torch.cat(seen.rows[k])
        assert got.shape[0] == 20 * (k + 1)
        assert _same_multiset(got, union)


def test_shared_transform_keeps_raw_tensors() -> None:
    bm = split(_raw(), _raw(8, 1), 2, seed=0, name="s", task_labels=True)
    union = concat_experiences([(e.dataset, e.task_label) for e in bm.train_stream])
    assert isinstance(union, TensorDataset)
    assert union.x.dtype == torch.uint8 and union.transform is bm.train_stream[0].dataset.transform
    seen = _train(bm, epochs=2)
    expected = torch.cat([_rows(e.dataset) for e in bm.train_stream])
    got = torch.cat(seen.rows[1])
    assert got.shape[0] == 2 * expected.shape[0]  # two epochs over the union
    assert _same_multiset(got, torch.cat([expected, expected]))
    assert set(got[:, -1].tolist()) == {0.0, 1.0}  # each sample keeps its task label


class _Pairs(Dataset[tuple[torch.Tensor, int]]):
    """A plain (x, y) dataset, not tensor-backed."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.y[i])


def test_generic_datasets_fall_back_to_concat_dataset() -> None:
    gen = torch.Generator().manual_seed(0)
    parts = [_Pairs(torch.randn(9, 4, generator=gen), torch.arange(9) % 3) for _ in range(3)]
    bm = from_datasets(train=parts, test=parts)
    union = concat_experiences([(e.dataset, e.task_label) for e in bm.train_stream])
    assert isinstance(union, ConcatDataset) and len(union) == 27
    seen = _train(bm)
    for k in range(3):
        expected = torch.cat([_rows(parts[j]) for j in range(k + 1)])
        assert _same_multiset(torch.cat(seen.rows[k]), expected)


def test_mixed_tensor_datasets_are_materialised() -> None:
    gen = torch.Generator().manual_seed(0)
    a = (torch.randn(5, 4, generator=gen), torch.arange(5) % 2)
    b = (torch.randn(6, 4, generator=gen), torch.arange(6) % 2)
    bm = from_tensors(train=[a, b], test=[a, b])
    union = concat_experiences([(e.dataset, 0) for e in bm.train_stream])
    assert isinstance(union, TensorDataset) and len(union) == 11
    torch.testing.assert_close(union.x, torch.cat([a[0], b[0]]))


def test_retraining_an_experience_does_not_duplicate_it_and_plugins_not_mutated() -> None:
    bm = permuted(_raw(), _raw(8, 1), 2, seed=0, name="p")
    model = agem.models.MLP(6, (4,), 4)
    mine: list[Any] = []
    s = agem.Cumulative(
        model, torch.optim.SGD(model.parameters(), lr=0.1), plugins=mine, evaluator=False
    )
    s.train(bm.train_stream[0])
    s.train(bm.train_stream[0])
    assert s.adapted_dataset is not None and len(s.adapted_dataset) == 20  # type: ignore[arg-type]
    s.train(bm.train_stream[1])
    assert len(s.adapted_dataset) == 40  # type: ignore[arg-type]
    assert mine == []
