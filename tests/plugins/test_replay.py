"""Replay: the reservoir keeps a uniform sample, never exceeds mem_size, the minibatch is
doubled with replayed samples, and the class-balanced buffer shares memory equally."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import agem
from agem.benchmarks import from_tensors
from agem.plugins import Plugin, ReplayPlugin
from tests.helpers.chi_square import chisquare


def _inclusion_by_arrival(
    offer: Any, n_items: int, batch: int, trials: int, bins: int
) -> torch.Tensor:
    """How often items of each arrival bin end up in the buffer, over `trials` streams."""
    counts = torch.zeros(bins)
    ids = torch.arange(n_items)
    for trial in range(trials):
        held = offer(ids, batch, trial)
        counts += torch.bincount(held * bins // n_items, minlength=bins).float()
    return counts


def _reservoir(mem_size: int) -> Any:
    def offer(ids: torch.Tensor, batch: int, seed: int) -> torch.Tensor:
        plugin = ReplayPlugin(mem_size, seed=seed)
        for start in range(0, ids.numel(), batch):
            chunk = ids[start : start + batch]
            plugin.update(chunk.float().unsqueeze(1), chunk % 10, torch.zeros_like(chunk))
        assert plugin.size == min(mem_size, ids.numel())
        return plugin.memory()[0].squeeze(1).long()

    return offer


def _keep_recent(mem_size: int) -> Any:
    """A biased buffer (replace a random slot always): the test must reject it."""

    def offer(ids: torch.Tensor, batch: int, seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        buf: list[int] = []
        for i in ids.tolist():
            if len(buf) < mem_size:
                buf.append(i)
            else:
                buf[int(torch.randint(mem_size, (1,), generator=gen))] = i
        return torch.tensor(buf)

    return offer


@pytest.mark.parametrize(
    ("mem_size", "n_items", "batch"),
    [(40, 400, 10), (20, 200, 7), (5, 100, 23)],  # the last: batches larger than the buffer
)
def test_reservoir_keeps_a_uniform_sample(mem_size: int, n_items: int, batch: int) -> None:
    trials, bins = 150, 10
    counts = _inclusion_by_arrival(_reservoir(mem_size), n_items, batch, trials, bins)
    assert counts.sum() == trials * mem_size
    expected = [trials * mem_size / bins] * bins
    assert chisquare(counts.numpy(), expected).pvalue > 1e-3


def test_uniformity_test_rejects_a_biased_buffer() -> None:
    counts = _inclusion_by_arrival(_keep_recent(20), 200, 7, 150, 10)
    expected = [150 * 20 / 10] * 10
    assert chisquare(counts.numpy(), expected).pvalue < 1e-6


def test_within_batch_duplicate_slots_last_wins() -> None:
    # mem_size 1: the buffer must hold the last sample that picked slot 0, i.e. each
    # sample n ends up held with probability 1/N overall (uniform), which needs the
    # sequential "last one wins" rule inside one vectorised batch.
    held = []
    for seed in range(1000):
        plugin = ReplayPlugin(1, seed=seed)
        ids = torch.arange(8)
        plugin.update(ids.float().unsqueeze(1), ids, torch.zeros_like(ids))
        held.append(int(plugin.memory()[1]))
    counts = torch.bincount(torch.tensor(held), minlength=8).float()
    assert chisquare(counts.numpy(), [1000 / 8] * 8).pvalue > 1e-3


class _BatchWatcher(Plugin):
    order = 1  # after the replay plugin

    def __init__(self, replay: ReplayPlugin) -> None:
        self.replay = replay
        self.sizes: list[int] = []
        self.labels: list[torch.Tensor] = []

    def before_forward(self, strategy: Any, **kwargs: Any) -> None:
        self.sizes.append(int(strategy.mb_y.shape[0]))
        self.labels.append(strategy.mb_y.clone())
        assert strategy.mb_x.shape[0] == strategy.mb_task_id.shape[0] == strategy.mb_y.shape[0]

    def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        assert self.replay.size <= self.replay.mem_size
        assert self.replay.valid_slots().numel() == self.replay.size


def _stream(n_exp: int, per_exp: int, classes_per_exp: int) -> Any:
    gen = torch.Generator().manual_seed(0)
    train = []
    for e in range(n_exp):
        y = e * classes_per_exp + torch.randint(0, classes_per_exp, (per_exp,), generator=gen)
        train.append((torch.randn(per_exp, 6, generator=gen) + y.unsqueeze(1).float(), y))
    return from_tensors(train=train, test=train)


@pytest.mark.parametrize("class_balanced", [False, True])
def test_training_doubles_minibatches_and_bounds_memory(class_balanced: bool) -> None:
    bm = _stream(3, 95, 2)
    model = agem.models.MLP(6, (8,), 6)
    s = agem.Replay(
        model,
        torch.optim.SGD(model.parameters(), lr=0.05),
        mem_size=40,
        class_balanced=class_balanced,
        train_mb_size=10,
        seed=0,
        evaluator=False,
    )
    watcher = _BatchWatcher(s.replay_plugin)
    s.plugins = sorted([*s.plugins, watcher], key=lambda p: p.order)
    s.train(bm.train_stream)
    # first minibatch: empty memory; then memory fills 10 at a time
    assert watcher.sizes[:3] == [10, 20, 20]
    assert watcher.sizes[9] == 5 + 5  # the last, partial minibatch of 5 gets 5 replayed
    assert all(size <= 20 for size in watcher.sizes)
    assert s.replay_plugin.size == 40
    # replayed labels of the last experience include old classes
    replayed = torch.cat([lab[lab.shape[0] // 2 :] for lab in watcher.labels[-9:]])
    assert (replayed < 4).any()


def test_class_balanced_shares_memory_equally_and_uniformly() -> None:
    plugin = ReplayPlugin(31, class_balanced=True, seed=0)
    for c in range(4):  # classes arrive one after another
        ids = torch.arange(100 * c, 100 * c + 100)
        y = torch.full((100,), c)
        for start in range(0, 100, 9):
            sl = slice(start, start + 9)
            plugin.update(ids[sl].float().unsqueeze(1), y[sl], torch.zeros_like(y[sl]))
            assert plugin.size <= 31
    x, y, _ = plugin.memory()
    counts = torch.bincount(y, minlength=4).tolist()
    assert counts == [8, 8, 8, 7]
    assert all(((x[y == c, 0] // 100) == c).all() for c in range(4))

    # within class 0 (shrunk three times) the kept items are uniform over its 100
    trials, hits = 200, torch.zeros(10)
    for seed in range(trials):
        p = ReplayPlugin(12, class_balanced=True, seed=seed)
        for c in range(3):
            ids = torch.arange(100 * c, 100 * c + 100)
            p.update(ids.float().unsqueeze(1), torch.full((100,), c), torch.zeros(100).long())
        xs, ys, _ = p.memory()
        kept = xs[ys == 0, 0].long()
        hits += torch.bincount(kept // 10, minlength=10).float()
    assert chisquare(hits.numpy(), [hits.sum().item() / 10] * 10).pvalue > 1e-3


def test_replayed_samples_keep_their_task_labels() -> None:
    gen = torch.Generator().manual_seed(0)
    train = [
        (torch.randn(40, 5, generator=gen), torch.randint(0, 2, (40,), generator=gen), t)
        for t in (0, 1)
    ]
    bm = from_tensors(train=train, test=train)
    model = agem.models.MultiHeadMLP(5, (8,), 2)
    s = agem.Replay(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        mem_size=30,
        train_mb_size=10,
        seed=0,
        evaluator=False,
    )
    tasks: list[torch.Tensor] = []

    class Watch(Plugin):
        order = 1

        def before_forward(self, strategy: Any, **kwargs: Any) -> None:
            tasks.append(strategy.mb_task_id.clone())

    s.plugins = sorted([*s.plugins, Watch()], key=lambda p: p.order)
    s.train(bm.train_stream)
    last = tasks[-1]
    assert (last[:10] == 1).all() and (last[10:] == 0).any()


def test_options_are_validated_and_plugins_not_mutated() -> None:
    model = agem.models.MLP(4, (4,), 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="mem_size"):
        agem.Replay(model, opt, mem_size=0)
    with pytest.raises(ValueError, match="class_balanced"):
        ReplayPlugin(10, class_balanced="yes")  # type: ignore[arg-type]
    mine: list[Any] = []
    s = agem.Replay(model, opt, mem_size=5, plugins=mine)
    assert mine == [] and s.replay_plugin in s.plugins


def test_state_dict_round_trip() -> None:
    plugin = ReplayPlugin(10, class_balanced=True, seed=0)
    ids = torch.arange(30)
    plugin.update(ids.float().unsqueeze(1), ids % 3, torch.zeros_like(ids))
    fresh = ReplayPlugin(10, class_balanced=True)
    fresh.load_state_dict(plugin.state_dict())
    assert torch.equal(fresh.memory()[0], plugin.memory()[0])
    more = torch.arange(30, 60)
    for p in (plugin, fresh):
        p.update(more.float().unsqueeze(1), more % 3, torch.zeros_like(more))
    assert torch.equal(fresh.memory()[0], plugin.memory()[0])


class _StepWatcher(Plugin):
    """After the evaluator: the statistics' inputs and the loss backward used."""

    order = 200

    def __init__(self) -> None:
        self.rows: list[tuple[int, float, float, float]] = []

    def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        out, y = strategy.mb_output.detach(), strategy.mb_y
        own = float(torch.nn.functional.cross_entropy(out, y))
        mb_loss = getattr(strategy, "mb_loss", strategy.loss)
        self.rows.append(
            (out.shape[0], own, float(mb_loss.detach()), float(strategy.loss.detach()))
        )


def test_training_statistics_count_only_the_current_experience() -> None:
    bm = _stream(2, 40, 2)
    model = agem.models.MLP(6, (8,), 4)
    s = agem.Replay(
        model, torch.optim.SGD(model.parameters(), lr=0.05), mem_size=30,
        train_mb_size=10, seed=0, plugins=[watch := _StepWatcher()],
    )  # fmt: skip
    s.train(bm.train_stream)
    records = s.evaluator.training
    assert [r["samples"] for r in records] == [40, 40]  # replayed samples not counted
    # the evaluator's loss is the mean criterion over the experience's own samples
    second = watch.rows[4:]
    assert all(n == 10 for n, *_ in second)
    assert records[1]["loss"] == pytest.approx(sum(r[1] for r in second) / 4, rel=1e-6)
    for _, own, mb_loss, used in second:
        assert mb_loss == pytest.approx(own, rel=1e-6)
        assert used != pytest.approx(own)  # backward used current and replayed samples


def _largest_allocation_while_training(mem_size: int) -> int:
    """The largest single CPU allocation (bytes) while training the second experience."""
    bm = _stream(2, 200, 2)
    torch.manual_seed(0)
    model = agem.models.MLP(6, (8,), 4)
    s = agem.Replay(
        model, torch.optim.SGD(model.parameters(), lr=0.05), mem_size=mem_size,
        train_mb_size=10, seed=0, evaluator=False,
    )  # fmt: skip
    s.train(bm.train_stream[0])
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        s.train(bm.train_stream[1])
    return max(e.cpu_memory_usage for e in prof.events())


def test_minibatch_cost_does_not_grow_with_the_capacity() -> None:
    small, huge = _largest_allocation_while_training(500), _largest_allocation_while_training(10**6)
    # a capacity-sized index array would be 8 MB here; the minibatches are a few KB
    assert huge <= max(small, 64 * 1024)


@pytest.mark.parametrize("class_balanced", [False, True])
def test_samples_from_a_large_buffer_are_distinct_and_uniform(class_balanced: bool) -> None:
    plugin = ReplayPlugin(20000, class_balanced=class_balanced, seed=0)
    ids = torch.arange(6000)
    plugin.update(ids.float().unsqueeze(1), ids % 3, torch.zeros_like(ids))
    counts = torch.zeros(10)
    for _ in range(300):
        x, y, _t = plugin.sample(40)
        held = x.squeeze(1).long()
        assert held.unique().numel() == 40 and bool((y == held % 3).all())
        counts += torch.bincount(held * 10 // 6000, minlength=10).float()
    assert chisquare(counts.numpy()).pvalue > 1e-3


class _AddOne(Plugin):
    """A penalty added to the loss before replay adds the replayed samples."""

    order = -1

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        strategy.loss = strategy.loss + 1.0


def test_replay_keeps_a_penalty_added_by_another_plugin() -> None:
    """A constant penalty leaves the gradients alone: the two runs train identically,
    and the loss backward used differs by exactly the penalty, replay steps included."""
    losses = []
    for extra in ([_AddOne()], []):
        bm = _stream(2, 40, 2)
        torch.manual_seed(0)
        model = agem.models.MLP(6, (8,), 4)
        watch = _StepWatcher()
        s = agem.Replay(
            model, torch.optim.SGD(model.parameters(), lr=0.05), mem_size=30,
            train_mb_size=10, seed=0, plugins=[*extra, watch],
        )  # fmt: skip
        s.train(bm.train_stream)
        losses.append([row[3] for row in watch.rows])
    with_penalty, without = losses
    assert len(with_penalty) == len(without) == 8
    assert [a - b for a, b in zip(with_penalty, without, strict=True)] == pytest.approx([1.0] * 8)
