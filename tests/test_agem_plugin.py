"""AGEMPlugin and agem.AGEM: construction, hooks, datasets, checkpoints, command line."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils.data import Dataset

import agem
from agem.benchmarks import from_datasets, from_tensors
from agem.cli.main import main as cli_main
from agem.hooks import ALL_HOOKS
from agem.plugins import AGEMPlugin, Plugin


# ---- construction ----------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -3, 1.5, 2.0, "4", None, True])
@pytest.mark.parametrize("name", ["patterns_per_experience", "sample_size"])
def test_invalid_sizes_raise_value_error_naming_the_parameter(name: str, bad: Any) -> None:
    kwargs: dict[str, Any] = {"patterns_per_experience": 10, "sample_size": 10, name: bad}
    with pytest.raises(ValueError, match=name):
        AGEMPlugin(**kwargs)
    model = agem.models.MLP(4, (8,), 3)
    with pytest.raises(ValueError, match=name):
        agem.AGEM(model, torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)


def test_invalid_options_raise_value_error() -> None:
    with pytest.raises(ValueError, match="sampling"):
        AGEMPlugin(10, 10, sampling="random")
    with pytest.raises(ValueError, match="seed"):
        AGEMPlugin(10, 10, seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_workers"):
        AGEMPlugin(10, 10).update_memory(_PlainDataset(5), num_workers=-1)
    with pytest.raises(TypeError):
        AGEMPlugin(10, 10, "balanced")  # type: ignore[misc]  # options are keyword-only


def test_seed_api_positional_constructor_and_defaults() -> None:
    plugin = AGEMPlugin(250, 256)
    assert (plugin.patterns_per_experience, plugin.sample_size) == (250, 256)
    assert plugin.sampling == "uniform"
    model = agem.models.MLP(4, (8,), 3)
    strategy = agem.AGEM(
        model, torch.optim.SGD(model.parameters(), lr=0.1), patterns_per_experience=7
    )
    assert strategy.agem_plugin.sample_size == 64
    assert strategy.agem_plugin.patterns_per_experience == 7
    assert isinstance(strategy.criterion, torch.nn.CrossEntropyLoss)


# ---- hooks -----------------------------------------------------------------------------
def test_only_the_a_gem_hooks_are_overridden() -> None:
    """The three of A-GEM itself, plus the two of ring-buffer memory filling (no-ops
    unless it is chosen)."""
    overridden = {h for h in ALL_HOOKS if getattr(AGEMPlugin, h) is not getattr(Plugin, h)}
    assert overridden == {
        "before_training_iteration",
        "after_backward",
        "after_training_exp",
        "before_training_exp",
        "after_training_iteration",
    }
    for name in ("sample_from_memory", "update_memory"):
        assert callable(getattr(AGEMPlugin, name))


def _data(seed: int, n: int = 40, d: int = 6) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, 3, (n,), generator=g)


def _strategy(cls: type, seed: int = 0, **kwargs: Any) -> agem.BaseTemplate:
    torch.manual_seed(seed)
    model = agem.models.MLP(6, (16,), 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return cls(model, opt, train_mb_size=8, evaluator=False, seed=seed, **kwargs)  # type: ignore[no-any-return]


def test_first_experience_is_plain_fine_tuning() -> None:
    """With an empty memory the hooks change nothing: AGEM equals Naive exactly."""
    bm = from_tensors(train=[_data(0)], test=[_data(0)])
    a = _strategy(agem.AGEM, patterns_per_experience=10, sample_size=5)
    n = _strategy(agem.Naive)
    a.train(bm.train_stream[0])
    n.train(bm.train_stream[0])
    for pa, pn in zip(a.model.parameters(), n.model.parameters()):
        assert torch.equal(pa, pn)
    assert a.agem_plugin.memory_size == 10  # type: ignore[attr-defined]


def test_second_experience_differs_from_fine_tuning() -> None:
    bm = from_tensors(train=[_data(0), _data(1)], test=[_data(0), _data(1)])
    a = _strategy(agem.AGEM, patterns_per_experience=10, sample_size=5)
    n = _strategy(agem.Naive)
    for s in (a, n):
        s.train(bm.train_stream)
    assert any(
        not torch.equal(pa, pn) for pa, pn in zip(a.model.parameters(), n.model.parameters())
    )


def test_callers_plugin_list_is_not_mutated() -> None:
    class Counter(Plugin):
        def __init__(self) -> None:
            self.n = 0

        def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
            self.n += 1

    counter = Counter()
    plugins = [counter]
    strategy = _strategy(agem.AGEM, patterns_per_experience=5, sample_size=4, plugins=plugins)
    assert plugins == [counter]
    assert counter in strategy.plugins and strategy.agem_plugin in strategy.plugins  # type: ignore[attr-defined]
    bm = from_tensors(train=[_data(0), _data(1)], test=[_data(0), _data(1)])
    strategy.train(bm.train_stream)
    assert plugins == [counter] and counter.n == 10
    other = _strategy(agem.AGEM, patterns_per_experience=5, sample_size=4, plugins=plugins)
    assert other.agem_plugin is not strategy.agem_plugin  # type: ignore[attr-defined]
    assert plugins == [counter]


def test_plugin_works_in_another_template() -> None:
    """The plugin is usable on its own, e.g. with Naive plus plugins=[AGEMPlugin(...)]."""
    bm = from_tensors(train=[_data(0), _data(1)], test=[_data(0), _data(1)])
    plugin = AGEMPlugin(10, 5)
    naive_with_plugin = _strategy(agem.Naive, plugins=[plugin])
    strategy = _strategy(agem.AGEM, patterns_per_experience=10, sample_size=5)
    for s in (naive_with_plugin, strategy):
        s.train(bm.train_stream)
    for pa, pb in zip(naive_with_plugin.model.parameters(), strategy.model.parameters()):
        assert torch.equal(pa, pb)
    assert plugin.memory_size == 20


# ---- datasets --------------------------------------------------------------------------
class _PlainDataset(Dataset[tuple[Tensor, int]]):
    """A map-style dataset yielding (x, y), with y a Python int: no tensors behind it."""

    def __init__(self, n: int, with_task: int | None = None) -> None:
        self.n = n
        self.with_task = with_task

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        x = torch.full((6,), float(i))
        if self.with_task is None:
            return x, i % 3
        return x, i % 3, self.with_task


@pytest.mark.parametrize("num_workers", [0, 2])
def test_update_memory_on_plain_dataset(num_workers: int) -> None:
    plugin = AGEMPlugin(30, 8, seed=0)
    plugin.update_memory(_PlainDataset(100), num_workers=num_workers)
    plugin.update_memory(_PlainDataset(50, with_task=4), num_workers)
    assert plugin.memory_x is not None and plugin.memory_y is not None
    assert plugin.memory_t is not None
    assert plugin.memory_x.shape == (60, 6) and plugin.experience_sizes == [30, 30]
    ids = plugin.memory_x[:, 0].long()
    assert torch.equal(plugin.memory_y, ids % 3)
    assert torch.equal(plugin.memory_t, torch.tensor([0] * 30 + [4] * 30))
    assert len(set(ids[:30].tolist())) == 30

    reference = AGEMPlugin(30, 8, seed=0)  # the same selection without workers
    reference.update_memory(_PlainDataset(100))
    reference.update_memory(_PlainDataset(50, with_task=4))
    assert torch.equal(plugin.memory_x, reference.memory_x)


def test_training_on_dataset_experiences_with_workers() -> None:
    bm = from_datasets(
        train=[_PlainDataset(24), _PlainDataset(24, with_task=0)],
        test=[_PlainDataset(8), _PlainDataset(8)],
    )
    strategy = _strategy(agem.AGEM, patterns_per_experience=6, sample_size=4)
    strategy.train(bm.train_stream, num_workers=2)
    assert strategy.agem_plugin.memory_size == 12  # type: ignore[attr-defined]


# ---- checkpoints -----------------------------------------------------------------------
@pytest.mark.parametrize("sampling", ["uniform", "balanced"])
def test_plugin_state_dict_round_trip(sampling: str) -> None:
    plugin = AGEMPlugin(10, 7, sampling=sampling, seed=3)
    for e in range(3):
        plugin.update_memory(_PlainDataset(40 + e))
    for _ in range(4):
        plugin.sample_from_memory()
    state = copy.deepcopy(plugin.state_dict())
    clone = AGEMPlugin(10, 7, sampling=sampling)
    clone.load_state_dict(state)
    for a, b in ((plugin, clone), (clone, plugin)):
        assert a.experience_sizes == b.experience_sizes
        assert torch.equal(a.memory_x, b.memory_x)  # type: ignore[arg-type]
    for _ in range(10):
        for xa, xb in zip(plugin.sample_from_memory(), clone.sample_from_memory()):
            assert torch.equal(xa, xb)
    plugin.update_memory(_PlainDataset(30))
    clone.update_memory(_PlainDataset(30))
    assert torch.equal(plugin.memory_x, clone.memory_x)  # type: ignore[arg-type]


@pytest.mark.parametrize("sampling", ["uniform", "balanced"])
def test_strategy_checkpoint_resumes_identically(sampling: str, tmp_path: Path) -> None:
    data = [_data(i) for i in range(3)]
    bm = from_tensors(train=data, test=data)
    kwargs = {"patterns_per_experience": 9, "sample_size": 6, "sampling": sampling}
    a = _strategy(agem.AGEM, **kwargs)
    a.train(bm.train_stream[:2])
    torch.save(a.state_dict(), tmp_path / "ckpt.pt")
    b = _strategy(agem.AGEM, seed=99, **kwargs)  # other weights and seed, all overwritten
    b.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=False))
    assert torch.equal(b.agem_plugin.memory_x, a.agem_plugin.memory_x)  # type: ignore[attr-defined]
    a.train(bm.train_stream[2])
    b.train(bm.train_stream[2])
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)


# ---- command line ----------------------------------------------------------------------
@pytest.mark.parametrize("sampling", ["uniform", pytest.param("balanced", marks=pytest.mark.slow)])
def test_cli_run_agem_on_embedded_data(sampling: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = cli_main(
        [
            "run",
            "--strategy", "agem",
            "--patterns-per-experience", "20",
            "--sample-size", "32",
            "--sampling", sampling,
            "--n-experiences", "2",
            "--hidden-sizes", "32",
            "--threads", "1",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["strategy"] == "agem"
    assert config["patterns_per_experience"] == 20
    assert config["sample_size"] == 32
    assert config["sampling"] == sampling
    results = json.loads((out / "results.json").read_text())
    assert len(results["accuracy_matrix"]) == 2
    assert 0.0 <= results["A_T"] <= 1.0


@pytest.mark.parametrize(
    "args",
    [["--patterns-per-experience", "0"], ["--sample-size", "-1"], ["--sampling", "random"]],
)
def test_cli_rejects_bad_agem_options(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["run", "--strategy", "agem", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err


# ---- no host synchronisation -----------------------------------------------------------
_SYNCING = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "nonzero")


class _NoSyncAGEM(AGEMPlugin):
    """Runs the per-iteration hooks with every tensor-to-host conversion made an error."""

    def _guarded(self, fn: Any, strategy: Any, kwargs: dict[str, Any]) -> None:
        def boom(*args: Any, **kw: Any) -> Any:
            raise AssertionError("a per-iteration A-GEM hook read a tensor on the host")

        saved = {name: getattr(torch.Tensor, name) for name in _SYNCING}
        try:
            for name in _SYNCING:
                setattr(torch.Tensor, name, boom)
            fn(strategy, **kwargs)
        finally:
            for name, method in saved.items():
                setattr(torch.Tensor, name, method)

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        self._guarded(super().before_training_iteration, strategy, kwargs)

    def after_backward(self, strategy: Any, **kwargs: Any) -> None:
        self._guarded(super().after_backward, strategy, kwargs)


@pytest.mark.parametrize("sampling", ["uniform", "balanced"])
def test_iteration_hooks_do_not_read_tensors_on_the_host(sampling: str) -> None:
    plugin = _NoSyncAGEM(5, 7, sampling=sampling)
    strategy = _strategy(agem.Naive, plugins=[plugin])
    data = [_data(i) for i in range(4)]
    bm = from_tensors(train=data, test=data)
    strategy.train(bm.train_stream)  # 3 experiences with memory, wrap-arounds included
    assert plugin.memory_size == 20
    # the guard is effective: an .item() inside the hook would have failed
    with pytest.raises(AssertionError, match="host"):
        plugin._guarded(lambda s: torch.zeros(1).item(), strategy, {})


# ---- the benchmark scripts (smoke tests on tiny synthetic data) ------------------------
def _script(name: str) -> Any:
    import importlib.util
    import sys

    scripts = Path(__file__).resolve().parent.parent / "scripts"
    sys.path.insert(0, str(scripts))  # sampling_study imports benchmark_agem
    try:
        spec = importlib.util.spec_from_file_location(name, scripts / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(scripts))
    return module


def test_benchmark_script_library_equals_hand_loops(tmp_path: Path) -> None:
    bench = _script("benchmark_agem")
    out = tmp_path / "bench.json"
    args = ["--synthetic", "--experiences", "3", "--train-patterns", "200", "--repeats", "1"]
    args += ["--patterns-per-experience", "50", "--sample-size", "64", "--threads", "1"]
    assert bench.main([*args, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    acc = result["mean_accuracy"]
    assert acc["agem"] == acc["hand_agem"] and acc["naive"] == acc["hand_naive"]
    assert set(result["ratios"]) == {
        "agem/hand_agem",
        "agem/hand_agem CPU",
        "naive/hand_naive",
        "naive/hand_naive CPU",
    }


def test_sampling_study_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = _script("sampling_study")
    out = tmp_path / "runs.jsonl"
    args = ["--synthetic", "--experiences", "2", "--train-patterns", "100", "--seeds", "0-1"]
    args += ["--patterns-per-experience", "20", "--sample-size", "16", "--jsonl", str(out)]
    assert study.main([*args, "--methods", "uniform,balanced"]) == 0
    runs = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((r["method"], r["seed"]) for r in runs) == [
        ("balanced", 0),
        ("balanced", 1),
        ("uniform", 0),
        ("uniform", 1),
    ]
    table = capsys.readouterr().out
    assert "| uniform | 2 |" in table and "uniform - balanced, A_T" in table
    assert study.main([*args, "--methods", "uniform,balanced"]) == 0  # resumes: no new runs
    assert len(out.read_text().splitlines()) == 4
