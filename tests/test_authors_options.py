"""The A-GEM authors' implementation details as options: class-balanced memory filling,
their truncated-normal initialisation, and a fresh training subset per experience."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from agem.benchmarks.digits import permuted_digits
from agem.benchmarks.registry import get
from agem.benchmarks.streams import TensorDataset
from agem.cli.main import main
from agem.models import MLP, MultiHeadMLP
from agem.models.init import truncated_normal_
from agem.plugins import AGEMPlugin
from agem.plugins.memory import select_patterns
from agem.runs.config import RunConfig
from agem.sweeps.spec import build_spec


def _labels(counts: list[int]) -> torch.Tensor:
    return torch.cat([torch.full((n,), c, dtype=torch.long) for c, n in enumerate(counts)])


def test_class_balanced_selection_gives_equal_shares_within_class_sizes() -> None:
    y = _labels([40, 40, 3, 40])  # class 2 has too few: the others share its rest
    ds = TensorDataset(torch.arange(len(y)).float().unsqueeze(1), y)
    idx = select_patterns(ds, 20, torch.Generator().manual_seed(0), filling="class_balanced")
    counts = torch.bincount(y[idx], minlength=4).tolist()
    assert sum(counts) == 20 and counts[2] == 3
    assert sorted(counts[i] for i in (0, 1, 3)) == [5, 6, 6]
    assert len(set(idx.tolist())) == 20  # no pattern twice
    exact = select_patterns(ds, 40, torch.Generator().manual_seed(1), filling="class_balanced")
    assert torch.bincount(y[exact], minlength=4).tolist() == [13, 12, 3, 12]
    # "random" draws exactly what the memory drew before the option existed
    random = select_patterns(ds, 20, torch.Generator().manual_seed(3))
    assert torch.equal(
        random, torch.randperm(len(y), generator=torch.Generator().manual_seed(3))[:20]
    )
    with pytest.raises(ValueError, match="memory filling must be one of"):
        select_patterns(ds, 5, torch.Generator(), filling="herding")


def test_agem_memory_holds_25_per_class_with_class_balanced_filling() -> None:
    bm = permuted_digits(2, seed=0)
    plugin = AGEMPlugin(250, 64, memory_filling="class_balanced", seed=0)
    for exp in bm.train_stream:
        plugin.update_memory(exp.dataset)
    assert plugin.memory_y is not None and plugin.experience_sizes == [250, 250]
    for part in plugin.memory_y.split(250):
        assert torch.bincount(part, minlength=10).tolist() == [25] * 10
    uniform = AGEMPlugin(250, 64, seed=0)
    uniform.update_memory(bm.train_stream[0].dataset)
    assert uniform.memory_y is not None
    assert torch.bincount(uniform.memory_y, minlength=10).tolist() != [25] * 10


def test_truncated_normal_init_matches_the_authors_code() -> None:
    torch.manual_seed(0)
    for model in (MLP(784, (256, 256), 10), MultiHeadMLP(64, (32,), 10)):
        truncated_normal_(model)
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        assert linears
        for layer in linears:
            assert torch.all(layer.bias == 0.1)
            assert float(layer.weight.detach().abs().max()) <= 0.2
    torch.manual_seed(0)
    big = truncated_normal_(MLP(784, (256, 256), 10))
    w = big.features[1].weight.detach().flatten()
    # N(0, 0.01) cut at ±0.2 has std 0.1 * 0.8796 (the truncation's variance factor)
    assert float(w.std()) == pytest.approx(0.08796, rel=0.02)
    assert float(w.mean()) == pytest.approx(0.0, abs=0.002)
    default = MLP(784, (256, 256), 10)  # PyTorch's: uniform, biases too
    assert not torch.all(default.features[1].bias == 0.1)
    with pytest.raises(ValueError, match="--init truncated_normal applies to --model mlp"):
        RunConfig(init="truncated_normal", model="resnet18")
    with pytest.raises(ValueError, match="not --strategy pnn"):
        RunConfig(init="truncated_normal", strategy="pnn", task_labels=True)


def test_fresh_subset_draws_other_samples_for_each_experience() -> None:
    same = permuted_digits(3, seed=0, train_subset=100)
    fresh = permuted_digits(3, seed=0, train_subset=100, fresh_subset=True)
    xs = [e.dataset.x for e in fresh.train_stream]  # type: ignore[attr-defined]
    assert all(len(x) == 100 for x in xs)
    assert not torch.equal(xs[0], xs[1]) and not torch.equal(xs[1], xs[2])
    assert torch.equal(xs[0], same.train_stream[0].dataset.x)  # type: ignore[attr-defined]
    shared = [e.dataset.x for e in same.train_stream]  # type: ignore[attr-defined]
    assert shared[0] is shared[1] is shared[2]
    assert same.info["permutations"] == fresh.info["permutations"]
    with pytest.raises(ValueError, match="needs a train_subset"):
        permuted_digits(2, seed=0, fresh_subset=True)
    with pytest.raises(ValueError, match="--fresh-subset draws a --train-subset"):
        RunConfig(fresh_subset=True)
    with pytest.raises(ValueError, match="fresh_subset applies to permuted benchmarks"):
        get("split_mnist").build(n_experiences=2, seed=0, fresh_subset=True)


def test_the_options_from_the_command_line_and_a_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # --help on one line per option
    out = tmp_path / "run"
    argv = ["run", "--strategy", "agem", "--n-experiences", "2", "--train-subset", "300"]
    argv += ["--fresh-subset", "--memory-filling", "class_balanced", "--init", "truncated_normal"]
    argv += ["--patterns-per-experience", "50", "--no-lca", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["fresh_subset"] is True and config["init"] == "truncated_normal"
    assert config["memory_filling"] == "class_balanced"
    assert json.loads((out / "results.json").read_text())["status"] == "complete"
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "truncated_normal (the A-GEM authors' code" in text
    assert "class_balanced (an equal number per class" in text
    assert "the A-GEM paper, ICLR'19, trains on all of them" in text
    spec = build_spec(
        {
            "base": {"train_subset": 200, "fresh_subset": True, "init": "truncated_normal"},
            "grid": {"strategy": ["agem", "gem"], "memory_filling": ["random", "class_balanced"]},
        }
    )
    assert len(spec.jobs) == 4
    assert any("--memory-filling" in j.options and "--fresh-subset" in j.options for j in spec.jobs)


def test_class_ring_keeps_each_class_last_examples_seen() -> None:
    """Slots per class = 2; the rings hold, per class, the last two samples written, also
    when one minibatch holds more of a class than its ring has slots."""
    from agem.plugins.memory import ClassRing

    ring = ClassRing([3, 7], 2, torch.device("cpu"))
    stream = [(0.0, 3), (1.0, 7), (2.0, 3), (3.0, 3), (4.0, 7)]
    ring.add(*_batch(stream))
    ring.add(*_batch([(5.0, 3), (6.0, 3), (7.0, 3), (8.0, 7)]))  # three of class 3 at once
    taken = ring.take()
    assert taken is not None
    x, y, _ = taken
    kept = {
        c: sorted(float(v) for v, lab in zip(x[:, 0], y, strict=True) if int(lab) == c)
        for c in (3, 7)
    }
    assert kept == {3: [6.0, 7.0], 7: [4.0, 8.0]}
    partial = ClassRing([0, 1], 3, torch.device("cpu"))
    partial.add(*_batch([(1.0, 0)]))
    taken = partial.take()
    assert taken is not None and taken[1].tolist() == [0]  # an unfilled ring gives what it has


def _batch(items: list[tuple[float, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.tensor([[v] for v, _ in items])
    y = torch.tensor([c for _, c in items])
    return x, y, torch.zeros_like(y)


def test_ring_buffer_agem_stores_the_last_examples_of_each_class(tmp_path: Path) -> None:
    """An A-GEM run with ring-buffer filling: after each experience the memory holds
    25 per class, and they are the last 25 of that class in the training order."""
    import agem
    from agem.benchmarks.streams import Benchmark

    bm: Benchmark = permuted_digits(2, seed=0, train_subset=600)
    torch.manual_seed(0)
    model = MLP(64, (32,), 10)
    seen: list[torch.Tensor] = []

    class Record(agem.plugins.base.Plugin):
        def after_training_iteration(self, strategy: agem.AGEM, **kwargs: object) -> None:
            seen.append(strategy.mb_x.clone())

    strategy = agem.AGEM(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        patterns_per_experience=250,
        sample_size=64,
        memory_filling="ring_buffer",
        train_mb_size=10,
        plugins=[Record()],
        seed=0,
    )
    strategy.train(bm.train_stream[0])
    plugin = strategy.agem_plugin
    assert plugin.memory_y is not None and plugin.experience_sizes == [250]
    assert torch.bincount(plugin.memory_y, minlength=10).tolist() == [25] * 10
    order = torch.cat(seen)
    labels = bm.train_stream[0].dataset.y  # type: ignore[attr-defined]
    assert len(order) == 600  # one epoch of 60 minibatches
    # identify each stored pattern's position in the training order by its input
    assert plugin.memory_x is not None
    positions = [int(((order - row).abs().sum(1) == 0).nonzero()[-1]) for row in plugin.memory_x]
    mem_labels = plugin.memory_y.tolist()
    batch_labels = _training_labels(order, bm, labels)
    for c in range(10):
        last = [i for i, lab in enumerate(batch_labels) if lab == c][-25:]
        assert sorted(p for p, lab in zip(positions, mem_labels, strict=True) if lab == c) == last
    strategy.train(bm.train_stream[1])
    assert plugin.experience_sizes == [250, 250]
    with pytest.raises(ValueError, match="ring_buffer applies to --strategy agem"):
        RunConfig(strategy="gem", memory_filling="ring_buffer")


def _training_labels(order: torch.Tensor, bm: object, labels: torch.Tensor) -> list[int]:
    """The label of each trained input, found by matching it in the experience's data."""
    ds = bm.train_stream[0].dataset  # type: ignore[attr-defined]
    inputs = ds.batch(torch.arange(len(ds)))[0]
    out = []
    for row in order:
        match = ((inputs - row).abs().sum(1) == 0).nonzero()
        out.append(int(labels[int(match[0])]))
    return out
