"""`RunConfig`: validation naming the flag, JSON round trip, one flag per field, --config."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from agem.cli.main import build_parser, main
from agem.runs.config import RunConfig, flag


def test_round_trip_through_json() -> None:
    config = RunConfig(strategy="gem", hidden_sizes=(8, 4), lr=0.05, threads=1).resolved()
    data = json.loads(json.dumps(config.to_dict()))
    assert RunConfig.from_dict(data) == config
    assert config.n_experiences == 5  # the benchmark's default, filled in


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"lr": float("inf")}, "--lr"),
        ({"lr": float("nan")}, "--lr"),
        ({"lr": 0}, "--lr"),
        ({"seed": -1}, "--seed"),
        ({"seed": 2**32}, "--seed"),
        ({"seed": True}, "--seed"),
        ({"batch_size": 2.5}, "--batch-size"),
        ({"hidden_sizes": (8, 0)}, "--hidden-sizes"),
        ({"strategy": "sgd"}, "--strategy"),
        ({"benchmark": "imagenet"}, "--benchmark"),
        ({"n_experiences": 10**6}, "--n-experiences"),
        ({"download": "yes"}, "--no-download"),
        ({"momentum": 0.9, "optimizer": "adam"}, "--momentum"),
        ({"plot_format": "jpg"}, "--plot-format"),
        ({"plot_format": "png,png"}, "--plot-format"),
        ({"wandb_tags": " , "}, "--wandb-tags"),
        ({"wandb_tags": "x" * 65}, "--wandb-tags"),
        ({"wandb_project": ""}, "--wandb-project"),
        ({"logger": "+csv,mlflow"}, "--logger"),
    ],
)
def test_bad_values_name_the_flag(changes: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=f"^{named} "):
        RunConfig(**changes)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"^{named} "):
        dataclasses.replace(RunConfig(), **changes)


@pytest.mark.parametrize(
    ("given", "loggers"),
    [
        ("csv", "csv"),
        ("tensorboard", "csv,tensorboard"),  # metrics.csv is always written
        ("wandb", "csv,wandb"),  # a list replaces the defaults
        ("+wandb", "csv,tensorboard,wandb"),  # + adds to them
        (" + wandb, tensorboard", "csv,tensorboard,wandb"),
        ("wandb,csv", "csv,wandb"),
    ],
)
def test_logger_lists(given: str, loggers: str) -> None:
    assert RunConfig(logger=given).logger == loggers


def test_wandb_tags_are_kept_tidy() -> None:
    assert RunConfig(wandb_tags=" a, b ,c").wandb_tags == "a,b,c"


def test_help_says_what_logger_lists_do(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "csv (metrics.csv, always written)" in text
    assert "start it with + to add to them (+wandb: csv, tensorboard and W&B)" in text
    for name in ("--wandb-project", "--wandb-entity", "--wandb-group", "--wandb-tags"):
        assert name in text
    assert "$WANDB_PROJECT" in text and "$WANDB_RUN_GROUP" in text


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown option --learning-rate"):
        RunConfig.from_dict({"learning_rate": 0.1})


def test_every_field_has_a_flag_showing_its_default() -> None:
    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    flags = {s: a for a in run._actions for s in a.option_strings}
    for name in RunConfig.field_names():
        assert flags[flag(name)].dest == name
    for action in run._actions:
        if action.option_strings and action.dest != "help":
            assert "default" in (action.help or ""), action.option_strings


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--lr", "inf"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--seed", "-1"], "--seed"),
        (["--seed", "18446744073709551616"], "--seed"),
        (["--n-experiences", "1e9"], "--n-experiences"),
        (["--threads", "100000"], "--threads"),
    ],
)
def test_cli_rejects_out_of_range_values(
    argv: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--out", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "r").exists()


def test_config_file_with_flags_that_override(tmp_path: Path) -> None:
    from agem.cli.run import config_from_args

    path = tmp_path / "config.json"
    saved = RunConfig(strategy="replay", mem_size=30, lr=0.05).resolved()
    path.write_text(json.dumps({**saved.to_dict(), "environment": {"torch": "x"}}))
    args = build_parser().parse_args(["run", "--config", str(path), "--lr", "0.2"])
    config = config_from_args(args)
    assert config == dataclasses.replace(saved, lr=0.2)


def test_config_file_with_an_unknown_key_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"strategy": "agem", "learning_rate": 1}))
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--learning-rate" in err[0]


def test_no_plots_is_a_run_option_that_does_not_change_results() -> None:
    from agem.runs.options import parse_run_argv, run_options

    config = parse_run_argv(["--no-plots"])
    assert config.plots is False and RunConfig().plots is True
    assert config.same_run(RunConfig()) == []
    assert RunConfig.from_dict(config.to_dict()) == config
    assert run_options()["no_plots"].flag == "--no-plots"


def test_plot_format_is_normalised_and_does_not_make_another_run() -> None:
    config = RunConfig(plot_format="SVG, pdf")
    assert config.plot_format == "pdf,svg" and config.plot_formats() == ("pdf", "svg")
    assert RunConfig().plot_formats() == ("png",)
    assert config.same_run(RunConfig()) == []  # resuming with other figure formats is fine
