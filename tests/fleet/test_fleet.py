"""A fleet of K seeds trains each run as the same seed would train alone."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import agem
from agem.benchmarks.streams import Benchmark
from agem.cli.main import main
from agem.fleet import Fleet
from agem.plugins import EvaluationPlugin, Plugin

SEEDS = (0, 1, 2, 3)


def _bench(seed: int) -> Benchmark:
    return agem.benchmarks.permuted_digits(n_experiences=3, seed=seed)


def _strategy(name: str, seed: int, bench: Benchmark, **extra: Any) -> agem.BaseTemplate:
    """As `agem run` builds it: the seed set before the model, SGD, a seeded strategy."""
    torch.manual_seed(seed)
    model = agem.models.MLP(64, (32,), 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    evaluator = EvaluationPlugin(
        eval_stream=bench.test_stream, eval_every="experience", lca_beta=3, lca_test_size=100
    )
    common: dict[str, Any] = {"train_mb_size": 10, "seed": seed, "evaluator": evaluator, **extra}
    if name == "agem":
        return agem.AGEM(model, optimizer, patterns_per_experience=40, sample_size=25, **common)
    if name == "replay":
        return agem.Replay(model, optimizer, mem_size=60, **common)
    return agem.Naive(model, optimizer, **common)


def _spy_samples(strategy: agem.BaseTemplate) -> list[torch.Tensor | None]:
    """Record every memory sample's indices the A-GEM plugin draws (a spy on the real one)."""
    plugin = strategy.agem_plugin  # type: ignore[attr-defined]
    drawn: list[torch.Tensor | None] = []
    draw: Callable[[], torch.Tensor | None] = plugin.sample_indices

    def recording() -> torch.Tensor | None:
        idx = draw()
        drawn.append(None if idx is None else idx.clone())
        return idx

    plugin.sample_indices = recording
    return drawn


def _flat(strategy: agem.BaseTemplate) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in strategy.model.parameters()])


@pytest.fixture(scope="module")
def agem_pair() -> dict[str, Any]:
    """A fleet of 4 A-GEM seeds and the same 4 seeds run alone, with what each recorded."""
    benches = {s: _bench(s) for s in SEEDS}
    alone = {s: _strategy("agem", s, benches[s]) for s in SEEDS}
    members = [_strategy("agem", s, benches[s]) for s in SEEDS]
    alone_draws = {s: _spy_samples(alone[s]) for s in SEEDS}
    fleet_draws = [_spy_samples(m) for m in members]
    fleet = Fleet(members)
    after_first: dict[str, Any] = {}
    for s in SEEDS:
        alone[s].train(benches[s].train_stream[0])
    fleet.train([benches[s].train_stream[0] for s in SEEDS])
    after_first["alone"] = {s: _flat(alone[s]).clone() for s in SEEDS}
    after_first["fleet"] = [_flat(m).clone() for m in members]
    for s in SEEDS:
        alone[s].train(benches[s].train_stream[1:])
    fleet.train([benches[s].train_stream[1:] for s in SEEDS])
    return {
        "fleet": fleet,
        "alone": alone,
        "members": members,
        "after_first": after_first,
        "alone_draws": alone_draws,
        "fleet_draws": fleet_draws,
    }


def test_accuracy_matrices_match_single_runs(agem_pair: dict[str, Any]) -> None:
    for k, s in enumerate(SEEDS):
        R_fleet = agem_pair["members"][k].evaluator.accuracy_matrix()
        R_alone = agem_pair["alone"][s].evaluator.accuracy_matrix()
        assert len(R_fleet) == 3
        for row_f, row_a in zip(R_fleet, R_alone, strict=True):
            for a, b in zip(row_f, row_a, strict=True):
                assert abs(a - b) <= 0.02


def test_parameters_after_first_experience_match(agem_pair: dict[str, Any]) -> None:
    first = agem_pair["after_first"]
    for k, s in enumerate(SEEDS):
        f, a = first["fleet"][k], first["alone"][s]
        assert torch.linalg.vector_norm(f - a) <= 1e-4 * torch.linalg.vector_norm(a)
    # the runs really differ from each other (their own init, shuffling and data)
    assert not torch.allclose(first["fleet"][0], first["fleet"][1])


def test_memory_and_memory_samples_are_the_single_runs(agem_pair: dict[str, Any]) -> None:
    for k, s in enumerate(SEEDS):
        pf = agem_pair["members"][k].agem_plugin
        pa = agem_pair["alone"][s].agem_plugin
        assert pf.experience_sizes == pa.experience_sizes == [40, 40, 40]
        assert torch.equal(pf.memory_x, pa.memory_x)
        assert torch.equal(pf.memory_y, pa.memory_y)
        drawn_f, drawn_a = agem_pair["fleet_draws"][k], agem_pair["alone_draws"][s]
        assert len(drawn_f) == len(drawn_a) > 0
        assert all(
            (x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))
            for x, y in zip(drawn_f, drawn_a, strict=True)
        )
        assert any(x is not None for x in drawn_f)  # sample 25 < memory 40 after exp 0


def test_members_models_are_views_of_the_stacked_parameters(agem_pair: dict[str, Any]) -> None:
    fleet = agem_pair["fleet"]
    flat = fleet.flat.detach()
    for k, member in enumerate(agem_pair["members"]):
        assert torch.equal(_flat(member), flat[k])
        for p in member.model.parameters():  # shared storage: evaluation sees live weights
            assert p.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr()
    evaluator = agem_pair["members"][1].evaluator
    experiences = [evaluator.experiences[k] for k in sorted(evaluator.experiences)]
    steps = -(-len(_bench(SEEDS[1]).train_stream[0].dataset) // 10)
    assert [e["iterations"] for e in experiences] == [steps] * 3
    assert all(e["train_seconds"] > 0 for e in experiences)


@pytest.mark.parametrize("name", ["naive", "replay"])
def test_naive_and_replay_fleets_match_single_runs(name: str) -> None:
    seeds = (5, 6)
    benches = {s: _bench(s) for s in seeds}
    members = [_strategy(name, s, benches[s]) for s in seeds]
    Fleet(members).train([benches[s].train_stream for s in seeds])
    for m, s in zip(members, seeds, strict=True):
        alone = _strategy(name, s, benches[s])
        alone.train(benches[s].train_stream)
        for row_f, row_a in zip(
            m.evaluator.accuracy_matrix(), alone.evaluator.accuracy_matrix(), strict=True
        ):
            assert max(abs(a - b) for a, b in zip(row_f, row_a, strict=True)) <= 0.02
        if name == "replay":
            assert torch.equal(m.replay_plugin.buffer_y, alone.replay_plugin.buffer_y)
        # training records cover the experience's own samples, as a single run's do
        for rec_f, rec_a in zip(m.evaluator.training, alone.evaluator.training, strict=True):
            assert rec_f["samples"] == rec_a["samples"]
            assert rec_f["loss"] == pytest.approx(rec_a["loss"], rel=0.05)


def test_member_optimizers_receive_their_rows_of_the_fleet_state() -> None:
    seeds = (3, 4)
    benches = {s: _bench(s) for s in seeds}

    def momentum(name: str, s: int) -> agem.BaseTemplate:
        strategy = _strategy(name, s, benches[s])
        params = list(strategy.model.parameters())
        strategy.optimizer = torch.optim.SGD(params, lr=0.05, momentum=0.9)
        return strategy

    members = [momentum("naive", s) for s in seeds]
    fleet = Fleet(members)
    fleet.train([benches[s].train_stream[0] for s in seeds])
    fleet.sync_member_optimizers()
    for m, s in zip(members, seeds, strict=True):
        alone = momentum("naive", s)
        alone.train(benches[s].train_stream[0])
        for p_f, p_a in zip(m.model.parameters(), alone.model.parameters(), strict=True):
            buf_f = m.optimizer.state[p_f]["momentum_buffer"]
            buf_a = alone.optimizer.state[p_a]["momentum_buffer"]
            assert buf_f.shape == p_f.shape
            torch.testing.assert_close(buf_f, buf_a, rtol=1e-3, atol=1e-5)


def test_fleet_refuses_what_it_cannot_stack() -> None:
    bench = _bench(0)
    torch.manual_seed(0)
    model = agem.models.ProgressiveNet(64, (16,), 10)
    pnn = agem.PNN(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(
        ValueError, match=r"fleet: supports Naive, AGEM, GEM, .* strategies, got PNN"
    ):
        Fleet([pnn])
    a, b = _strategy("naive", 0, bench), _strategy("agem", 1, bench)
    with pytest.raises(ValueError, match="one strategy"):
        Fleet([a, b])
    with pytest.raises(ValueError, match="at least one"):
        Fleet([])
    with pytest.raises(ValueError, match="CUDA device"):
        Fleet([_strategy("naive", 0, bench)], cuda_graph=True)
    with pytest.raises(ValueError, match="replay reads the host"):
        Fleet([_strategy("replay", 0, bench)], cuda_graph=True)

    class Penalty(Plugin):
        def before_backward(self, strategy: Any, **kwargs: Any) -> None:
            strategy.loss = strategy.loss * 2

    with pytest.raises(ValueError, match=r"Penalty has hooks inside the step .* not gradient_only"):
        Fleet([_strategy("naive", 0, bench, plugins=[Penalty()])])
    si = agem.SI(model := agem.models.MLP(64, (16,), 10), torch.optim.SGD(model.parameters()))
    with pytest.raises(ValueError, match="cuda_graph=True supports naive and agem members, not SI"):
        Fleet([si], cuda_graph=True)
    drop = agem.models.MLP(64, (16,), 10, dropout=0.5)
    naive = agem.Naive(drop, torch.optim.SGD(drop.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="MLP model without dropout"):
        Fleet([naive])


def _cli(*args: str) -> int:
    return main(["run", *args])


CLI_ARGS = ("--n-experiences", "2", "--hidden-sizes", "16", "--threads", "1", "--lca-beta", "2")


@pytest.mark.slow
def test_cli_fleet_writes_run_folders_that_compare_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fleet"
    assert (
        _cli("--strategy", "agem", "--fleet", "2", "--seed", "7", "--out", str(out), *CLI_ARGS) == 0
    )
    assert "seed 8: A_T=" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "seed7",
        "seed8",
    ]
    for s in (7, 8):
        run = out / f"seed{s}"
        config = json.loads((run / "config.json").read_text())
        assert config["seed"] == s and config["fleet"] == 1
        results = json.loads((run / "results.json").read_text())
        assert results["seed"] == s and len(results["accuracy_matrix"]) == 2
        assert {"A_T", "F_T", "BWT", "FWT", "LCA_2"} <= set(results)
        assert (run / "metrics.csv").is_file() and (run / "accuracy_matrix.png").is_file()
    alone = tmp_path / "alone"
    assert _cli("--strategy", "agem", "--seed", "8", "--out", str(alone), *CLI_ARGS) == 0
    R_fleet = json.loads((out / "seed8" / "results.json").read_text())["accuracy_matrix"]
    R_alone = json.loads((alone / "results.json").read_text())["accuracy_matrix"]
    assert max(abs(a - b) for ra, rb in zip(R_fleet, R_alone) for a, b in zip(ra, rb)) <= 0.02
    capsys.readouterr()
    runs = [str(out / "seed7"), str(out / "seed8")]
    assert main(["compare", *runs, "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "agem" in table and "permuted_digits" in table
    assert (tmp_path / "comparison.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--strategy", "pnn", "--task-labels", "--fleet", "2"),
            "--fleet supports --strategy naive, agem, gem, replay, ewc, cumulative, si, mas, "
            "rwalk, not pnn",
        ),
        (("--strategy", "agem", "--fleet", "2", "--sampling", "balanced"), "--sampling uniform"),
        (("--fleet", "0"), "--fleet must be an integer in 1..1024"),
        (("--fleet", "2", "--model", "resnet18"), "--model mlp without --task-labels"),
        (("--fleet", "2", "--task-labels"), "--model mlp without --task-labels"),
        (
            ("--strategy", "replay", "--fleet", "2", "--cuda-graph", "--device", "cuda"),
            "--cuda-graph supports --strategy naive, agem, not replay",
        ),
    ],
)
def test_cli_fleet_refusals_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    assert _cli(*args, "--out", str(tmp_path / "x"), *CLI_ARGS) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
