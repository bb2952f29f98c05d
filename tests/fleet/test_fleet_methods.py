"""Every method a fleet trains beside naive, A-GEM and replay (EWC in each mode, SI, MAS,
RWalk, GEM, Cumulative): a fleet of 3 seeds trains each run as the same seed alone, and
`agem run --fleet 3` writes folders that `agem compare` and `agem run --resume` read."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import torch

import agem
from agem.benchmarks.streams import Benchmark
from agem.cli.main import main
from agem.fleet import Fleet
from agem.plugins import EvaluationPlugin
from tests.helpers.runs import TINY, one_line_error, results, start, wait_for
from tests.helpers.runs import agem as agem_process

SEEDS = (0, 1, 2)
METHODS = (
    "ewc-separate",
    "ewc-online",
    "ewc-running",
    "si",
    "mas",
    "rwalk",
    "gem",
    "gem-device",
    "cumulative",
)


def _bench(seed: int) -> Benchmark:
    return agem.benchmarks.permuted_digits(n_experiences=2, seed=seed)


def _strategy(name: str, seed: int, bench: Benchmark, device: str = "cpu") -> agem.BaseTemplate:
    """As `agem run` builds it: the seed set before the model, SGD, a seeded strategy."""
    torch.manual_seed(seed)
    model = agem.models.MLP(64, (32,), 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    evaluator = EvaluationPlugin(eval_stream=bench.test_stream, eval_every="experience")
    common: dict[str, Any] = {
        "train_mb_size": 10, "seed": seed, "evaluator": evaluator, "device": device,
    }  # fmt: skip
    if name == "ewc-separate":
        return agem.EWC(model, optimizer, ewc_lambda=5.0, **common)
    if name == "ewc-online":
        return agem.EWC(model, optimizer, ewc_lambda=5.0, mode="online", decay_factor=0.9, **common)
    if name == "ewc-running":
        return agem.EWC(model, optimizer, ewc_lambda=10.0, mode="running", **common)
    if name == "si":
        return agem.SI(model, optimizer, si_lambda=0.5, **common)
    if name == "mas":
        return agem.MAS(model, optimizer, mas_lambda=1.0, **common)
    if name == "rwalk":
        return agem.RWalk(model, optimizer, rwalk_lambda=1.0, **common)
    if name.startswith("gem"):
        solver = "device" if name == "gem-device" else "quadprog"
        return agem.GEM(model, optimizer, patterns_per_experience=30, solver=solver, **common)
    assert name == "cumulative"
    return agem.Cumulative(model, optimizer, **common)


def _flat(strategy: agem.BaseTemplate) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in strategy.model.parameters()])


def _state_tensors(strategy: agem.BaseTemplate) -> dict[str, torch.Tensor]:
    """Every tensor of the method's plugin state (memories, importances, anchors), by path."""
    found: dict[str, torch.Tensor] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            found[prefix] = value
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}/{k}", v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{prefix}/{i}", v)

    for key, state in strategy.state_dict()["plugins"].items():
        if "EvaluationPlugin" not in key:
            walk(key, state)
    return found


@pytest.fixture(scope="module", params=METHODS)
def pair(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A fleet of 3 seeds and the same seeds alone, with the parameters after experience 0."""
    name = request.param
    benches = {s: _bench(s) for s in SEEDS}
    alone = {s: _strategy(name, s, benches[s]) for s in SEEDS}
    members = [_strategy(name, s, benches[s]) for s in SEEDS]
    fleet = Fleet(members)
    for s in SEEDS:
        alone[s].train(benches[s].train_stream[0])
    fleet.train([benches[s].train_stream[0] for s in SEEDS])
    first = {"alone": [_flat(alone[s]) for s in SEEDS], "fleet": [_flat(m) for m in members]}
    for s in SEEDS:
        alone[s].train(benches[s].train_stream[1:])
    fleet.train([benches[s].train_stream[1:] for s in SEEDS])
    return {"name": name, "alone": alone, "members": members, "first": first}


def test_accuracy_matrices_match_single_runs(pair: dict[str, Any]) -> None:
    for k, s in enumerate(SEEDS):
        R_fleet = pair["members"][k].evaluator.accuracy_matrix()
        R_alone = pair["alone"][s].evaluator.accuracy_matrix()
        assert len(R_fleet) == len(R_alone) == 2
        diff = max(abs(a - b) for rf, ra in zip(R_fleet, R_alone) for a, b in zip(rf, ra))
        assert diff <= 0.02, (pair["name"], s, diff)


def test_parameters_after_first_experience_match(pair: dict[str, Any]) -> None:
    first = pair["first"]
    for f, a in zip(first["fleet"], first["alone"], strict=True):
        assert torch.linalg.vector_norm(f - a) <= 1e-4 * torch.linalg.vector_norm(a)
    assert not torch.allclose(first["fleet"][0], first["fleet"][1])  # the runs differ


def test_memories_and_method_state_are_the_single_runs(pair: dict[str, Any]) -> None:
    """Memories (and their samples) are equal; anchors agree to 1e-3 and importances to 1e-2
    of each tensor's norm after the last experience (an importance such as SI's divides by
    squared changes, which amplifies the batched kernels' round-off)."""
    for k, s in enumerate(SEEDS):
        mine, theirs = _state_tensors(pair["members"][k]), _state_tensors(pair["alone"][s])
        assert mine.keys() == theirs.keys()
        if pair["name"] != "cumulative":
            assert mine  # the method keeps state: compared below
        for key, value in mine.items():
            other = theirs[key]
            if "memories" in key or not value.is_floating_point():
                assert torch.equal(value, other), key
            else:
                # importances amplify round-off (SI divides by squared changes): 1%
                tol = 1e-2 if any(w in key for w in ("importance", "score", "fisher")) else 1e-3
                diff = torch.linalg.vector_norm(value - other)
                assert diff <= tol * torch.linalg.vector_norm(other) + 1e-7, key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", METHODS)
def test_fleet_on_cuda_matches_single_runs(name: str) -> None:
    benches = {s: _bench(s) for s in SEEDS}
    members = [_strategy(name, s, benches[s], "cuda") for s in SEEDS]
    Fleet(members).train([benches[s].train_stream for s in SEEDS])
    for m, s in zip(members, SEEDS, strict=True):
        alone = _strategy(name, s, benches[s], "cuda")
        alone.train(benches[s].train_stream)
        R_fleet, R_alone = m.evaluator.accuracy_matrix(), alone.evaluator.accuracy_matrix()
        diff = max(abs(a - b) for rf, ra in zip(R_fleet, R_alone) for a, b in zip(rf, ra))
        assert diff <= 0.02, (name, s, diff)


def test_penalty_loss_is_recorded_per_member() -> None:
    """The training statistics of a member are those of its run alone (value added by the
    penalty included in `loss`, not in the evaluator's `mb_loss` records)."""
    benches = {s: _bench(s) for s in SEEDS[:2]}
    members = [_strategy("si", s, benches[s]) for s in SEEDS[:2]]
    Fleet(members).train([benches[s].train_stream for s in SEEDS[:2]])
    for m, s in zip(members, SEEDS[:2], strict=True):
        alone = _strategy("si", s, benches[s])
        alone.train(benches[s].train_stream)
        for rec_f, rec_a in zip(m.evaluator.training, alone.evaluator.training, strict=True):
            assert rec_f["samples"] == rec_a["samples"]
            assert rec_f["loss"] == pytest.approx(rec_a["loss"], rel=0.02)


CLI = {
    "ewc-separate": ["--strategy", "ewc", "--ewc-lambda", "5"],
    "ewc-online": ["--strategy", "ewc", "--ewc-mode", "online", "--ewc-lambda", "5"],
    "ewc-running": ["--strategy", "ewc", "--ewc-mode", "running", "--ewc-lambda", "10"],
    "si": ["--strategy", "si"],
    "mas": ["--strategy", "mas"],
    "rwalk": ["--strategy", "rwalk"],
    "gem": ["--strategy", "gem", "--gem-solver", "quadprog"],
    "gem-device": ["--strategy", "gem", "--gem-solver", "device"],
    "cumulative": ["--strategy", "cumulative"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS)
def test_cli_fleet_folders_compare_and_resume(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`agem run --fleet 3`, stopped by SIGTERM after the first checkpoint: each member's
    folder resumes as a single run to the single run's result, and `agem compare` reads
    the three."""
    out = tmp_path / "fleet"
    args = [*TINY, *CLI[name], "--seed", "4"]
    proc = start(
        "run",
        *args,
        "--fleet",
        "3",
        "--out",
        str(out),
        AGEM_TEST_PAUSE_BEFORE_RENAME="checkpoint.pt:0.5",
    )
    wait_for(lambda: (out / "seed4" / "checkpoint.pt").exists())
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)
    assert f"agem run --resume {out}/seed<s>" in one_line_error(proc, 143, after_training=True)
    for s in (4, 5, 6):
        resumed = agem_process("run", "--resume", str(out / f"seed{s}"))
        assert resumed.returncode == 0, resumed.stderr
        assert results(out / f"seed{s}")["status"] == "complete"
    alone = tmp_path / "alone"
    assert main(["run", *args, "--seed", "6", "--out", str(alone)]) == 0
    a, b = results(out / "seed6"), results(alone)
    diff = max(
        abs(x - y)
        for ra, rb in zip(a["accuracy_matrix"], b["accuracy_matrix"], strict=True)
        for x, y in zip(ra, rb, strict=True)
    )
    assert diff <= 0.02
    capsys.readouterr()
    runs = [str(out / f"seed{s}") for s in (4, 5, 6)]
    assert main(["compare", *runs, "--out", str(tmp_path)]) == 0
    assert "permuted_digits" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_fleet_of_a_new_method_writes_single_run_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fleet"
    args = [*TINY, "--n-experiences", "2", "--strategy", "si", "--lca-beta", "2"]
    assert main(["run", *args, "--fleet", "3", "--seed", "1", "--out", str(out)]) == 0
    for s in (1, 2, 3):
        done = results(out / f"seed{s}")
        assert done["status"] == "complete" and done["fleet_size"] == 3
        # a complete member is read back by --resume as it is
        assert main(["run", "--resume", str(out / f"seed{s}")]) == 0
    capsys.readouterr()
    assert main(["compare", *(str(out / f"seed{s}") for s in (1, 2, 3))]) == 0
    assert "si" in capsys.readouterr().out


def test_progressive_networks_are_refused_in_one_line() -> None:
    proc = agem_process("run", "--strategy", "pnn", "--task-labels", "--fleet", "2")
    line = one_line_error(proc)
    assert line.startswith("agem: error: --fleet supports --strategy") and "not pnn" in line
