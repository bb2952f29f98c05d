"""The strategy registry is the one place a strategy is declared: a toy strategy
registered there (and nowhere else) is offered by `agem run --help`, accepted by sweeps,
built by the run layer, warned about by the command line, and its memory is checked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from agem.benchmarks.registry import get
from agem.cli.applicability import ignored_options
from agem.cli.main import main
from agem.runs.bounds import check_fits
from agem.runs.config import RunConfig
from agem.runs.factory import build_strategy
from agem.strategies import Replay
from agem.strategies.registry import (
    MemoryPiece,
    StrategySpec,
    get_strategy,
    register,
    strategy_names,
    unregister,
)
from agem.sweeps.spec import SpecError, parse_spec


class Toy(Replay):
    """A replay variant only this test knows."""


@pytest.fixture
def toy() -> Iterator[StrategySpec]:
    spec = register(
        StrategySpec(
            "toy",
            Toy,
            options={"mem_size": "mem_size"},
            memory=(MemoryPiece("mem_size", "the toy buffer", lambda o, n, e: o["mem_size"]),),
        )
    )
    try:
        yield spec
    finally:
        unregister("toy")
    assert "toy" not in strategy_names()


def test_the_builtin_strategies_are_registered() -> None:
    assert strategy_names()[:10] == (
        *("naive", "agem", "gem", "replay", "ewc", "cumulative"),
        *("si", "mas", "rwalk", "pnn"),
    )
    assert [get_strategy(n).fleet for n in strategy_names()[:10]] == [1] * 9 + [0]  # not pnn
    with pytest.raises(ValueError, match=r"^--strategy must be one of naive, agem, gem, .*'nope'$"):
        get_strategy("nope")


def test_a_name_is_registered_once(toy: StrategySpec) -> None:
    with pytest.raises(ValueError, match="'toy' is registered already"):
        register(toy)


def test_a_toy_strategy_appears_in_run_help(
    toy: StrategySpec, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["run", "--help"])
    assert done.value.code == 0
    assert "rwalk,pnn,toy}" in capsys.readouterr().out


def test_a_toy_strategy_is_accepted_by_sweeps_with_its_option_bounds(toy: StrategySpec) -> None:
    spec = parse_spec('[base]\nmem_size = 5\n[grid]\nstrategy = ["naive", "toy"]\n')
    assert [job.values["strategy"] for job in spec.jobs] == ["naive", "toy"]
    with pytest.raises(SpecError, match="--mem-size must be an integer >= 1, got 0"):
        parse_spec('[base]\nmem_size = 0\n[grid]\nstrategy = ["toy"]\n')


def test_without_registration_sweeps_refuse_it() -> None:
    with pytest.raises(SpecError, match="strategy"):
        parse_spec('[grid]\nstrategy = ["toy"]\n')


def test_a_toy_strategy_is_built_warned_about_and_its_memory_checked(toy: StrategySpec) -> None:
    config = RunConfig(strategy="toy", mem_size=7, n_experiences=2).resolved()
    bm = get(config.benchmark).build(n_experiences=2, seed=0)
    model = torch.nn.Linear(64, 10)
    common = {"train_mb_size": 4, "seed": 0}
    built = build_strategy(
        "toy", model, torch.optim.SGD(model.parameters(), lr=0.1), config.to_dict(), common
    )
    assert type(built) is Toy and built.replay_plugin.mem_size == 7
    assert ignored_options(config, ["mem_size"]) == []
    assert ignored_options(config, ["sample_size"]) == [
        "--sample-size does not apply to --strategy toy (ignored; it is read by agem)"
    ]
    with pytest.raises(ValueError, match="--mem-size 10000000: the toy buffer would need"):
        check_fits(RunConfig(strategy="toy", mem_size=10**7, n_experiences=2), bm, available=2**30)
    check_fits(config, bm, available=2**30)
    with pytest.raises(
        ValueError, match=r"--fleet supports --strategy naive, agem, gem, .*, rwalk, not toy"
    ):
        RunConfig(strategy="toy", fleet=2)
