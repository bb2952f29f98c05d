"""The captured training step: its refusals (on any machine) and, on a CUDA GPU, that it
trains as the eager step does, without a host synchronisation per step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import agem
from agem.cli.main import main
from agem.core.captured_step import IN_STEP_HOOKS, check_graph_safe, is_graph_safe
from agem.fleet import Fleet
from agem.plugins import (
    AGEMPlugin,
    ConsoleLogger,
    CSVLogger,
    EvaluationPlugin,
    EWCPlugin,
    Plugin,
    ReplayPlugin,
)
from agem.plugins.agem import project
from agem.plugins.memory import random_subset

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")


def _model(seed: int = 0, hidden: int = 32) -> torch.nn.Module:
    torch.manual_seed(seed)
    return agem.models.MLP(64, (hidden, hidden), 10)


class ScaleGrads(Plugin):
    """Changes gradients in a hook inside the step, without declaring itself graph-safe."""

    def after_backward(self, strategy: Any, **kwargs: Any) -> None:
        for p in strategy.model.parameters():
            if p.grad is not None:
                p.grad.mul_(0.5)


class SafeScaleGrads(ScaleGrads):
    graph_safe = True


# ---- refusals: a clear error, never a silent fallback ---------------------------------
def test_cpu_device_is_refused() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="needs a CUDA device, got 'cpu'"):
        agem.Naive(model, opt, device="cpu", cuda_graph=True)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        agem.AGEM(model, opt, patterns_per_experience=10, device="cpu", cuda_graph=True)


def test_plugin_that_is_not_graph_safe_is_refused() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"ScaleGrads is not graph-safe .*after_backward"):
        agem.Naive(model, opt, plugins=[ScaleGrads()], device="cpu", cuda_graph=True)
    # declared graph-safe: the plugin check passes, the next refusal is the device's
    with pytest.raises(ValueError, match="CUDA device"):
        agem.Naive(model, opt, plugins=[SafeScaleGrads()], device="cpu", cuda_graph=True)


def test_optimizer_that_cannot_be_captured_is_refused() -> None:
    model = _model()
    adam = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="capturable=True"):
        agem.Naive(model, adam, device="cpu", cuda_graph=True)


def test_other_bad_options_are_refused() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="sampling='uniform' only"):
        agem.AGEM(model, opt, patterns_per_experience=10, sampling="balanced", cuda_graph=True)
    with pytest.raises(ValueError, match="cuda_graph must be True or False"):
        agem.Naive(model, opt, cuda_graph=1)  # type: ignore[arg-type]


def test_graph_safety_of_the_library_plugins() -> None:
    assert is_graph_safe(AGEMPlugin(10, 5))  # declares it
    assert is_graph_safe(EvaluationPlugin()) and is_graph_safe(ConsoleLogger())
    assert is_graph_safe(CSVLogger("unused.csv"))  # no hook inside the step
    assert not is_graph_safe(ReplayPlugin(10)) and not is_graph_safe(EWCPlugin(1.0))
    assert not is_graph_safe(ScaleGrads()) and is_graph_safe(SafeScaleGrads())
    with pytest.raises(ValueError, match=r"ReplayPlugin is not graph-safe .*before_forward"):
        check_graph_safe([EvaluationPlugin(), ReplayPlugin(10)])
    assert IN_STEP_HOOKS[0] == "before_training_iteration" and IN_STEP_HOOKS[-1] == "after_update"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--cuda-graph",), "needs a CUDA device"),
        (
            ("--cuda-graph", "--strategy", "gem", "--device", "cuda"),
            "supports --strategy naive, agem",
        ),
    ],
)
def test_cli_cuda_graph_refusals_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code = main(
        ["run", *args, "--n-experiences", "2", "--hidden-sizes", "8", "--out", str(tmp_path / "x")]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert message in err or "CUDA is not available" in err
    assert not (tmp_path / "x").exists()  # refused before the run folder is made


# ---- the device-side sample and the per-run projection --------------------------------
def test_random_subset_is_uniform_without_replacement() -> None:
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(20)
    for _ in range(2000):
        idx = random_subset(20, 5, generator=gen)
        assert idx.unique().numel() == 5 and int(idx.min()) >= 0 and int(idx.max()) < 20
        counts[idx] += 1
    expected = 2000 * 5 / 20
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 45  # 19 degrees of freedom: p < 1e-3 above ~43.8
    rows = random_subset(30, 7, runs=4, generator=gen)
    assert rows.shape == (4, 7) and all(r.unique().numel() == 7 for r in rows)
    assert random_subset(3, 10, generator=gen).sort().values.tolist() == [0, 1, 2]
    with pytest.raises(ValueError):
        random_subset(0, 1)


def test_projection_over_a_run_dimension_is_per_run() -> None:
    gen = torch.Generator().manual_seed(1)
    g = torch.randn(6, 50, generator=gen)
    ref = torch.randn(6, 50, generator=gen)
    ref[2] = 0.0  # a zero reference leaves its run unchanged
    expected = g.clone()
    for k in range(6):
        project(expected[k], ref[k].clone())
    rows, scratch = g.clone(), ref.clone()
    project(rows, scratch)
    assert torch.allclose(rows, expected, atol=1e-6)
    assert torch.equal(rows[2], g[2])
    conflicts = (g * ref).sum(-1) < 0
    assert conflicts.any() and (~conflicts).any()
    assert torch.equal(rows[~conflicts], g[~conflicts])
    with pytest.raises(ValueError, match="one shape"):
        project(g, ref[0])


# ---- on a CUDA GPU ----------------------------------------------------------------------
def _cuda_bench(n_train: int = 400, n_exp: int = 2) -> Any:
    gen = torch.Generator().manual_seed(3)
    train, test = [], []
    for _ in range(n_exp):
        x = torch.randn(n_train, 64, generator=gen)
        y = (x[:, :10].argmax(1) + torch.randint(0, 2, (n_train,), generator=gen)) % 10
        train.append((x, y))
        test.append((x[:100], y[:100]))
    return agem.benchmarks.from_tensors(train=train, test=test)


def _train(strategy: agem.BaseTemplate, bench: Any) -> torch.Tensor:
    for exp in bench.train_stream:
        strategy.train(exp)
    torch.cuda.synchronize()
    return torch.cat([p.detach().reshape(-1) for p in strategy.model.parameters()])


def _pair(name: str, **kw: Any) -> tuple[agem.BaseTemplate, agem.BaseTemplate]:
    made = []
    for graph in (False, True):
        model = _model(0)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        common: dict[str, Any] = {
            "train_mb_size": 10,
            "device": "cuda",
            "seed": 0,
            "evaluator": False,
            "cuda_graph": graph,
            **kw,
        }
        if name == "agem":
            made.append(agem.AGEM(model, opt, **common))
        else:
            made.append(agem.Naive(model, opt, **common))
    return made[0], made[1]


@needs_cuda
def test_captured_naive_step_equals_eager_over_experiences() -> None:
    bench = _cuda_bench(n_train=395)  # the last minibatch is partial: eager
    eager, graphed = _pair("naive")
    a, b = _train(eager, bench), _train(graphed, bench)
    assert graphed.step_graph is not None and graphed.step_graph.captures == 2
    assert graphed.step_graph.replays > 60
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


@needs_cuda
def test_captured_agem_step_equals_eager_when_the_sample_is_the_memory() -> None:
    bench = _cuda_bench()
    # sample_size >= memory size: the reference gradient uses the whole memory, no draw
    eager, graphed = _pair("agem", patterns_per_experience=50, sample_size=256)
    a, b = _train(eager, bench), _train(graphed, bench)
    assert graphed.step_graph is not None and graphed.step_graph.captures == 2
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


@needs_cuda
def test_captured_agem_draws_fresh_samples_on_the_device() -> None:
    bench = _cuda_bench(n_exp=3)
    _, graphed = _pair("agem", patterns_per_experience=50, sample_size=20)
    plugin = graphed.agem_plugin  # type: ignore[attr-defined]
    _train(graphed, bench)
    assert plugin.device_sampling and graphed.step_graph.captures == 3  # type: ignore[union-attr]
    first, second = plugin.sample_indices(), plugin.sample_indices()
    assert first.device.type == "cuda" and first.unique().numel() == 20
    assert not torch.equal(first.sort().values, second.sort().values)


class SyncGuard(Plugin):
    """After the first capture, turn host synchronisations into errors until epoch end."""

    def __init__(self) -> None:
        self.guarded_steps = 0

    def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        self.guard(strategy.step_graph)

    def guard(self, graph: Any) -> None:
        if graph is not None and graph.captured:  # replays from now until the epoch ends
            if torch.cuda.get_sync_debug_mode() == 0:
                torch.cuda.set_sync_debug_mode("error")
            else:
                self.guarded_steps += 1

    def after_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        torch.cuda.set_sync_debug_mode(0)


@pytest.fixture
def _sync_mode_reset() -> Iterator[None]:
    yield
    if CUDA:
        torch.cuda.set_sync_debug_mode(0)


@needs_cuda
@pytest.mark.usefixtures("_sync_mode_reset")
def test_captured_agem_step_never_synchronises_with_the_host() -> None:
    bench = _cuda_bench(n_train=400)  # whole minibatches only
    guard = SyncGuard()
    _, graphed = _pair("agem", patterns_per_experience=50, sample_size=20, plugins=[guard])
    _train(graphed, bench)
    assert guard.guarded_steps > 60


class FleetSyncGuard(SyncGuard):
    def __init__(self, fleet_box: list[Fleet]) -> None:
        super().__init__()
        self.fleet_box = fleet_box

    def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        self.guard(self.fleet_box[0].step_graph if self.fleet_box else None)


def _fleet(name: str, graph: bool, plugins: Any = None, k: int = 4) -> Fleet:
    members = []
    for s in range(k):
        model = _model(s)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        common: dict[str, Any] = {
            "train_mb_size": 10,
            "device": "cuda",
            "seed": s,
            "evaluator": False,
        }
        if name == "agem":
            members.append(
                agem.AGEM(
                    model,
                    opt,
                    patterns_per_experience=50,
                    sample_size=20,
                    plugins=plugins if s == k - 1 else None,
                    **common,
                )
            )
        else:
            members.append(agem.Naive(model, opt, **common))
    return Fleet(members, cuda_graph=graph)


@needs_cuda
def test_captured_fleet_equals_eager_fleet_for_naive() -> None:
    bench = _cuda_bench(n_train=395)
    flats = []
    for graph in (False, True):
        fleet = _fleet("naive", graph)
        for exp in bench.train_stream:
            fleet.train([exp] * fleet.size)
        torch.cuda.synchronize()
        flats.append(fleet.flat.detach().clone())
    assert torch.allclose(flats[0], flats[1], rtol=1e-4, atol=1e-5)


@needs_cuda
@pytest.mark.usefixtures("_sync_mode_reset")
def test_captured_agem_fleet_never_synchronises_with_the_host() -> None:
    bench = _cuda_bench(n_train=400, n_exp=3)
    box: list[Fleet] = []
    guard = FleetSyncGuard(box)
    fleet = _fleet("agem", True, plugins=[guard])
    box.append(fleet)
    for exp in bench.train_stream:
        fleet.train([exp] * fleet.size)
    assert fleet.step_graph is not None and fleet.step_graph.captures == 3
    assert guard.guarded_steps > 60
    assert torch.isfinite(fleet.flat).all()
