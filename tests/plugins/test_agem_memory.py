"""A-GEM's episodic memory: what is stored and how reference samples are drawn."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import agem
from agem.benchmarks import TensorDataset, from_tensors
from agem.plugins import AGEMPlugin
from tests.helpers.chi_square import chisquare

P_MIN = 1e-4  # a correct sampler fails a test at this level about once in 10,000 runs


def _ids(n: int, start: int = 0, task: int = 0) -> TensorDataset:
    """A dataset whose input is the pattern's id, so stored patterns can be identified."""
    ids = torch.arange(start, start + n)
    return TensorDataset(ids.float().unsqueeze(1), ids % 3, task)


def _stored(plugin: AGEMPlugin) -> list[int]:
    assert plugin.memory_x is not None
    return [int(v) for v in plugin.memory_x[:, 0].tolist()]


def _sampled(plugin: AGEMPlugin) -> list[int]:
    x, _, _ = plugin.sample_from_memory()
    return [int(v) for v in x[:, 0].tolist()]


@pytest.mark.parametrize(("n", "k", "expected"), [(100, 30, 30), (20, 30, 20), (30, 30, 30)])
def test_stores_patterns_per_experience_or_all(n: int, k: int, expected: int) -> None:
    plugin = AGEMPlugin(k, 8, seed=0)
    for e in range(3):
        plugin.update_memory(_ids(n, start=1000 * e))
        ids = _stored(plugin)
        assert plugin.experience_sizes == [expected] * (e + 1)
        assert len(ids) == expected * (e + 1)
        assert len(set(ids)) == len(ids)  # no duplicates
        # each experience's patterns come from that experience
        for j in range(e + 1):
            block = ids[j * expected : (j + 1) * expected]
            assert all(1000 * j <= i < 1000 * j + n for i in block)
    # labels and task labels travel with the inputs
    assert plugin.memory_y is not None and plugin.memory_t is not None
    assert torch.equal(plugin.memory_y, plugin.memory_x[:, 0].long() % 3)  # type: ignore[index]
    assert torch.equal(plugin.memory_t, torch.zeros_like(plugin.memory_t))


def test_memory_selection_is_uniform() -> None:
    """Over many seeds, each of 20 patterns is stored equally often (chi-square test)."""
    n, k, seeds = 20, 5, 800
    counts = torch.zeros(n)
    for s in range(seeds):
        plugin = AGEMPlugin(k, 1, seed=s)
        plugin.update_memory(_ids(n))
        counts[_stored(plugin)] += 1
    assert counts.sum() == seeds * k
    assert chisquare(counts.numpy()).pvalue > P_MIN
    # the test has power: storing the first k patterns 1 time in 10 more is detected
    biased = counts.clone()
    biased[:k] += seeds * k / n * 0.5
    biased[k:] -= seeds * k / n * 0.5 * k / (n - k)
    assert chisquare(biased.numpy()).pvalue < P_MIN


def test_memory_sample_is_uniform_without_replacement() -> None:
    n, k, draws = 24, 6, 1200
    plugin = AGEMPlugin(n // 2, k, seed=1)
    plugin.update_memory(_ids(n // 2))
    plugin.update_memory(_ids(n // 2, start=n // 2))
    counts = torch.zeros(n)
    pairs = torch.zeros(n, n)
    for _ in range(draws):
        ids = _sampled(plugin)
        assert len(ids) == k and len(set(ids)) == k  # min(sample_size, memory), no repeats
        counts[ids] += 1
        pairs[ids[0], ids[1]] += 1
    assert chisquare(counts.numpy()).pvalue > P_MIN
    # the patterns are drawn from the whole memory, both experiences alike
    assert counts[: n // 2].sum() > 0 and counts[n // 2 :].sum() > 0
    off_diagonal = pairs[~torch.eye(n, dtype=torch.bool)]
    assert chisquare(off_diagonal.numpy()).pvalue > P_MIN


@pytest.mark.parametrize("sampling", ["uniform", "balanced"])
def test_same_seed_same_memory_and_samples(sampling: str) -> None:
    def run(seed: int) -> tuple[list[int], list[list[int]]]:
        plugin = AGEMPlugin(10, 7, sampling=sampling, seed=seed)
        for e in range(3):
            plugin.update_memory(_ids(100, start=100 * e))
        return _stored(plugin), [_sampled(plugin) for _ in range(20)]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_strategy_seed_drives_the_memory() -> None:
    def memory(seed: int) -> list[int]:
        model = agem.models.MLP(1, (4,), 3)
        strategy = agem.AGEM(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            patterns_per_experience=10,
            sample_size=4,
            train_mb_size=10,
            evaluator=False,
            seed=seed,
        )
        ds = _ids(100)
        bm = from_tensors(train=[(ds.x, ds.y)], test=[(ds.x, ds.y)])
        strategy.train(bm.train_stream[0])
        return _stored(strategy.agem_plugin)

    assert memory(3) == memory(3)
    assert memory(3) != memory(4)


@pytest.mark.parametrize("sampling", ["uniform", "balanced"])
def test_sample_size_larger_than_memory_uses_whole_memory(sampling: str) -> None:
    plugin = AGEMPlugin(5, 64, sampling=sampling, seed=0)
    plugin.update_memory(_ids(50))
    plugin.update_memory(_ids(3, start=100))  # fewer than patterns_per_experience
    for _ in range(3):
        assert sorted(_sampled(plugin)) == sorted(_stored(plugin))
        assert len(_sampled(plugin)) == 8


@pytest.mark.parametrize("sampling", ["uniform", "balanced"])
def test_more_experiences_than_sample_size(sampling: str) -> None:
    plugin = AGEMPlugin(4, 3, sampling=sampling, seed=0)
    for e in range(6):
        plugin.update_memory(_ids(10, start=100 * e))
    seen_experiences: set[int] = set()
    for _ in range(10):
        ids = _sampled(plugin)
        assert len(ids) == 3 and len(set(ids)) == 3
        seen_experiences |= {i // 100 for i in ids}
        if sampling == "balanced":
            assert len({i // 100 for i in ids}) == 3  # one pattern from each of 3 experiences
    assert seen_experiences == set(range(6))


@pytest.mark.parametrize("sampling", ["uniform", "balanced"])
def test_training_with_more_experiences_than_sample_size(sampling: str) -> None:
    torch.manual_seed(0)
    model = agem.models.MLP(4, (8,), 3)
    strategy = agem.AGEM(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        patterns_per_experience=5,
        sample_size=2,
        sampling=sampling,
        train_mb_size=4,
        evaluator=False,
        seed=0,
    )
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(12, 4, generator=g), torch.randint(0, 3, (12,), generator=g))]
    bm = from_tensors(train=data * 5, test=data * 5)
    for exp in bm.train_stream:
        strategy.train(exp)
    assert strategy.agem_plugin.experience_sizes == [5] * 5
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _per_experience_streams(
    plugin: AGEMPlugin, calls: int, n_exp: int
) -> tuple[list[list[int]], list[list[int]]]:
    streams: list[list[int]] = [[] for _ in range(n_exp)]
    shares = []
    for _ in range(calls):
        ids = _sampled(plugin)
        assert len(ids) == len(set(ids))  # never the same pattern twice in one sample
        share = [0] * n_exp
        for i in ids:
            streams[i // 100].append(i)
            share[i // 100] += 1
        shares.append(share)
    return streams, shares


@pytest.mark.parametrize(("size", "sample_size"), [(5, 12), (7, 6), (6, 9), (10, 10)])
def test_balanced_equal_shares_and_every_pattern_before_reuse(size: int, sample_size: int) -> None:
    n_exp = 3
    plugin = AGEMPlugin(size, sample_size, sampling="balanced", seed=0)
    for e in range(n_exp):
        plugin.update_memory(_ids(50, start=100 * e))
    streams, shares = _per_experience_streams(plugin, 40, n_exp)
    for share in shares:
        assert sum(share) == sample_size
        assert max(share) - min(share) <= 1  # equal shares (up to the remainder)
    # the larger shares rotate: over calls every experience gets the same total (+-1)
    totals = [sum(s[e] for s in shares) for e in range(n_exp)]
    assert max(totals) - min(totals) <= 1
    stored = _stored(plugin)
    for e, stream in enumerate(streams):
        patterns = sorted(i for i in stored if i // 100 == e)
        # consecutive cycles of `size` draws are each a permutation of the stored patterns
        for c in range(len(stream) // size):
            assert sorted(stream[c * size : (c + 1) * size]) == patterns
        # and the cycles are reshuffled, not repeated
        cycles = {tuple(stream[c * size : (c + 1) * size]) for c in range(len(stream) // size)}
        assert len(cycles) > 1


def test_balanced_with_unequal_experiences_redistributes() -> None:
    plugin = AGEMPlugin(10, 12, sampling="balanced", seed=0)
    plugin.update_memory(_ids(2))  # only 2 patterns
    plugin.update_memory(_ids(50, start=100))
    plugin.update_memory(_ids(50, start=200))
    _, shares = _per_experience_streams(plugin, 10, 3)
    for share in shares:
        assert share[0] == 2 and sum(share) == 12 and abs(share[1] - share[2]) <= 1


def test_sample_keeps_task_labels() -> None:
    plugin = AGEMPlugin(4, 6, seed=0)
    plugin.update_memory(_ids(10, task=0))
    plugin.update_memory(_ids(10, start=100, task=3))
    for _ in range(5):
        x, y, t = plugin.sample_from_memory()
        expected = torch.where(x[:, 0] >= 100, 3, 0)
        assert torch.equal(t, expected)
        assert torch.equal(y, x[:, 0].long() % 3)


def test_sampling_from_empty_memory_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="empty"):
        AGEMPlugin(4, 6).sample_from_memory()


def test_memory_is_kept_as_tensors() -> None:
    plugin = AGEMPlugin(4, 6, seed=0)
    plugin.update_memory(_ids(10))
    plugin.update_memory(_ids(10, start=100))
    for t in (plugin.memory_x, plugin.memory_y, plugin.memory_t):
        assert isinstance(t, Tensor) and t.shape[0] == 8
