"""The command line around a run: --version, python -m agem, --debug, the warning for
options the run ignores, and --logger (csv, tensorboard with hyperparameters, wandb)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import agem
from agem.cli.main import main

FAST = ["--n-experiences", "2", "--train-subset", "100", "--threads", "1", "--log-every", "5"]


def _agem(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "agem", *argv],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def test_python_m_agem_version_names_agem_and_torch() -> None:
    proc = _agem("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"agem {agem.__version__} (torch {torch.__version__},")


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["--debug", "run", "--lr", "-1"], {}),
        (["run", "--lr", "-1", "--debug"], {}),
        (["run", "--lr", "-1"], {"AGEM_DEBUG": "1"}),
    ],
    ids=["--debug first", "--debug after run", "AGEM_DEBUG=1"],
)
def test_debug_shows_the_traceback(argv: list[str], env: dict[str, str], tmp_path) -> None:
    proc = _agem(*argv, env=env, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Traceback (most recent call last):")
    assert proc.stderr.rstrip().endswith("ValueError: --lr must be a finite number > 0, got -1.0")


def test_without_debug_an_error_is_one_line(tmp_path: Path) -> None:
    proc = _agem("run", "--lr", "-1", env={"AGEM_DEBUG": ""}, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "agem: error: --lr must be a finite number > 0, got -1.0\n"


def test_option_that_does_not_apply_warns_once_and_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = main(["run", "--strategy", "naive", "--mem-size", "50", *FAST, "--out", str(out)])
    assert code == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("agem: warning:")]
    assert warnings == [
        "agem: warning: --mem-size does not apply to --strategy naive "
        "(ignored; it is read by replay)"
    ]
    assert json.loads((out / "results.json").read_text())["status"] == "complete"


def test_options_that_apply_do_not_warn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "--strategy", "replay", "--mem-size", "50", *FAST, "--logger", "csv"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_logger_csv_only_writes_no_events(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", "--strategy", "naive", *FAST, "--logger", "csv", "--out", str(out)]) == 0
    assert (out / "metrics.csv").is_file()
    assert not list(out.glob("events.out.tfevents.*")) and not (out / "wandb").exists()
    assert json.loads((out / "config.json").read_text())["logger"] == "csv"


def test_unknown_logger_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["run", "--logger", "csv,mlflow", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--logger must be a comma-separated list of" in err


def test_tensorboard_logger_writes_hyperparameters_with_final_metrics(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    out = tmp_path / "run"
    argv = ["run", "--strategy", "naive", *FAST, "--logger", "tensorboard", "--out", str(out)]
    assert main(argv) == 0
    assert (out / "metrics.csv").is_file()  # always written: the run folder's own record
    (events,) = out.glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["strategy"].string_value == "naive"
    assert start.session_start_info.hparams["train_subset"].number_value == 100
    results = json.loads((out / "results.json").read_text())
    assert acc.Scalars("metrics/A_T")[-1].value == pytest.approx(results["A_T"], abs=1e-6)


@pytest.mark.slow
def test_wandb_logger_from_the_command_line_offline(tmp_path: Path) -> None:
    pytest.importorskip("wandb", reason="needs pip install -e '.[wandb]'")
    from tests.helpers.wandb_records import history

    out = tmp_path / "run"
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = _agem("run", *FAST, "--logger", "wandb", "--out", str(out), env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run_file,) = out.glob("wandb/offline-run-*/run-*.wandb")
    rows, config, summary = history(run_file)
    results = json.loads((out / "results.json").read_text())
    assert config["strategy"] == "agem" and config["train_subset"] == 100
    assert summary["A_T"] == pytest.approx(results["A_T"])
    assert [h["train/iteration"] for h in rows if "train/loss" in h][:2] == [5, 10]
    plots = {k for h in rows for k in h if k.startswith("plots/")}
    assert plots == {"plots/accuracy_matrix", "plots/accuracy_over_time", "plots/lca"}


def test_every_option_of_every_subcommand_states_its_default() -> None:
    import argparse

    from agem.cli.main import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    missing = []
    for name, command in [("agem", parser), *sub.choices.items()]:
        for action in command._actions:
            if action.option_strings and action.dest not in ("help", "version"):
                if "default" not in (action.help or ""):
                    missing.append(f"{name} {action.option_strings[0]}")
    assert not [m for m in missing if m.split()[0] in ("agem", "datasets")], missing
