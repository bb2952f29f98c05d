"""Sweep specs: TOML parsing, run names, option checks by the real `agem run` parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from agem.cli.main import main
from agem.sweeps.presets import PRESETS, get_preset
from agem.sweeps.runner import prepare_folder
from agem.sweeps.spec import SpecError, parse_spec

GOOD = """
[base]
benchmark = "permuted_digits"
n_experiences = 2
hidden_sizes = [16, 8]
task_labels = false
download = false
[grid]
strategy = ["naive", "agem"]
seed = [0, 1]
"""


def test_grid_expands_to_named_runs_with_cli_options() -> None:
    spec = parse_spec(GOOD)
    assert [j.name for j in spec.jobs] == [
        "strategy-naive_seed-0",
        "strategy-naive_seed-1",
        "strategy-agem_seed-0",
        "strategy-agem_seed-1",
    ]
    options = spec.jobs[2].options
    assert options[:6] == (
        "--benchmark",
        "permuted_digits",
        "--n-experiences",
        "2",
        "--hidden-sizes",
        "16,8",
    )
    assert "--no-download" in options and "--task-labels" not in options
    assert options[-4:] == ("--strategy", "agem", "--seed", "0")
    assert spec.jobs[2].configuration == {"strategy": "agem"}


def test_spec_round_trips_through_toml() -> None:
    spec = parse_spec(GOOD)
    again = parse_spec(spec.to_toml())
    assert again.canonical() == spec.canonical()
    assert [j.options for j in again.jobs] == [j.options for j in spec.jobs]


def test_array_of_grids_names_runs_by_what_varies() -> None:
    spec = parse_spec(
        """
        [base]
        n_experiences = 2
        [[grid]]
        strategy = ["naive"]
        lr = [0.1, 0.03]
        [[grid]]
        strategy = ["ewc"]
        lr = [0.1]
        ewc_lambda = [1.0, 10.0]
        """
    )
    names = [j.name for j in spec.jobs]
    assert names == [
        "strategy-naive_lr-0.1",
        "strategy-naive_lr-0.03",
        "strategy-ewc_lr-0.1_ewc_lambda-1.0",
        "strategy-ewc_lr-0.1_ewc_lambda-10.0",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[grid]\nfoo_bar = [1]", "unknown option 'foo_bar'"),
        ("[base]\nlr = 'fast'\n[grid]\nseed = [0]", "--lr"),
        ("[grid]\nlr = [0.1, 'x']", "--lr"),
        ("[grid]\nstrategy = ['nope']", "--strategy"),
        ("[grid]\nexperiences = ['5:2']", "--experiences"),
        ("[grid]\nseed = [-1]", "--seed"),
        ("[grid]\nseed = []", "empty list"),
        ("[grid]", "empty"),
        ("[base]\nlr = 0.1", "no [grid]"),
        ("[grid]\nseed = 0", "must be a list"),
        ("[grid]\nout = ['x']", "set by the sweep"),
        ("[grid]\ntask_labels = [1]", "is a flag"),
        ("[grid]\nlr = [true]", "takes a value"),
        ("[extra]\na = 1\n[grid]\nseed = [0]", "unknown section"),
        ("[grid\n", "not valid TOML"),
    ],
)
def test_bad_specs_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=None) as info:
        parse_spec(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_spec_exits_2_with_one_line_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text("[base]\nepochs = 'many'\n[grid]\nseed = [0, 1]\n")
    out = tmp_path / "sweep"
    assert main(["sweep", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--epochs" in err[0]
    assert not out.exists()
    assert main(["sweep", str(tmp_path / "missing.toml"), "--out", str(out)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_a_folder_of_another_sweep_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    prepare_folder(parse_spec(GOOD), out)
    assert (out / "sweep.toml").is_file()
    prepare_folder(parse_spec(GOOD), out)  # the same sweep again: fine
    other = tmp_path / "other.toml"
    other.write_text(GOOD.replace("n_experiences = 2", "n_experiences = 3"))
    assert main(["sweep", str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "different sweep" in err[0]
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine")
    with pytest.raises(SpecError, match="not a sweep folder"):
        prepare_folder(parse_spec(GOOD), plain)


def test_sweep_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--out", str(tmp_path)]) == 2
    assert "SWEEP.toml or --preset" in capsys.readouterr().err
    assert main(["sweep", "--preset", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_presets_are_listed_and_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--list-presets"]) == 0
    listed = capsys.readouterr().out
    for name in ("agem-paper-pmnist", "agem-paper-split-cifar", "agem-paper-pfmnist"):
        assert name in listed
    for name in PRESETS:
        protocol = get_preset(name)
        selection = protocol.selection_spec()
        strategies = {j.values["strategy"] for j in selection.jobs}
        assert {"naive", "ewc", "gem", "agem", "replay", "cumulative"} <= strategies
        assert all("0:3" in j.options for j in selection.jobs)
        choices = {m.name: {k: v[0] for k, v in m.search.items()} for m in protocol.methods}
        report = protocol.report_spec(choices)
        assert len(report.jobs) == len(protocol.methods) * 5  # five seeds per method
        assert all("3:20" in j.options for j in report.jobs)


@pytest.mark.slow
def test_paper_pmnist_protocol_values() -> None:
    protocol = get_preset("agem-paper-pmnist")
    job = next(j for j in protocol.selection_spec().jobs if j.values["strategy"] == "agem")
    argv = list(job.options)

    def value(flag: str) -> str:
        return argv[len(argv) - 1 - argv[::-1].index(flag) + 1]

    assert value("--benchmark") == "permuted_mnist"
    assert value("--n-experiences") == "20"
    assert value("--hidden-sizes") == "256,256"
    assert value("--batch-size") == "10" and value("--epochs") == "1"
    assert value("--patterns-per-experience") == "250" and value("--sample-size") == "256"
    lrs = {j.values["lr"] for j in protocol.selection_spec().jobs}
    assert lrs == {0.0001, 0.001, 0.003, 0.01, 0.03, 0.1}
    small = protocol.with_overrides({"n_experiences": 5, "lr": [0.1], "seeds": 2})
    report = small.report_spec(
        {m.name: {k: v[0] for k, v in m.search.items()} for m in small.methods}
    )
    replay = next(j for j in report.jobs if j.values["strategy"] == "replay")
    assert "3:5" in replay.options and replay.values["mem_size"] == 500  # 250 x 2 tasks
    assert {j.values["seed"] for j in report.jobs} == {0, 1}
    with pytest.raises(SpecError, match="non-empty list"):
        protocol.with_overrides({"lr": 0.1})


def test_fleet_is_refused_in_a_sweep() -> None:
    with pytest.raises(SpecError, match="'fleet' is not available in a sweep"):
        parse_spec(GOOD + "fleet = [2]\n")


def test_selection_never_chooses_a_candidate_that_diverged(tmp_path: Path) -> None:
    """Selection picks the best mean A_T among candidates whose runs all completed: a
    learning rate that diverged on one seed loses even if its other seeds score best."""
    from agem.runs.folder import RunFolder
    from agem.sweeps.twophase import choose

    protocol = get_preset("agem-paper-pfmnist").with_overrides(
        {"lr": [0.01, 0.1], "ewc_lambda": [10.0], "selection_seeds": 2}
    )
    spec = protocol.selection_spec()
    scores = {0.01: (0.5, 0.6), 0.1: (0.9, None)}  # lr 0.1 diverges on its second seed
    for job in spec.jobs:
        a_t = scores[job.values["lr"]][job.values["seed"]]
        folder = RunFolder(tmp_path / job.name)
        folder.path.mkdir()
        status = "diverged" if a_t is None else "complete"
        folder.write_results({"A_T": a_t}, status)
    choices = choose(protocol, spec, tmp_path)
    assert {c["lr"] for c in choices.values()} == {0.01}
    assert choices["agem"]["selection_A_T"] == pytest.approx(0.55)


def test_a_sweep_may_grow_but_not_change_its_runs(tmp_path: Path) -> None:
    """A spec that runs every stored run again with the same options (more seeds, another
    strategy) extends the sweep; one that drops or changes a stored run is refused."""
    out = tmp_path / "sweep"
    prepare_folder(parse_spec(GOOD), out)
    grown = parse_spec(GOOD.replace("seed = [0, 1]", "seed = [0, 1, 2]"))
    prepare_folder(grown, out)
    assert parse_spec((out / "sweep.toml").read_text()).canonical() == grown.canonical()
    with pytest.raises(SpecError, match="different sweep"):  # seed 2 would be dropped
        prepare_folder(parse_spec(GOOD), out)
    with pytest.raises(SpecError, match="different sweep"):
        prepare_folder(parse_spec(GOOD.replace('"naive", ', "")), out)
