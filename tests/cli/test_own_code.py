"""A user's own model, benchmark, strategy and plugin in `agem run`: by import path and by
an installed package's entry points, through a run, a SIGKILL and resume, `--config`
replay and a sweep; and every way of getting them wrong gives one line and exit 2."""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import os
import signal
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from agem.cli.main import main
from agem.runs.config import RunConfig
from agem.runs.options import parse_run_argv
from tests.helpers.own_package import write_package
from tests.helpers.runs import env, one_line_error, results, temp_files, wait_for
from tests.runs.test_resume import PAUSE, assert_same_run

ROOT = Path(__file__).resolve().parents[2]
MODEL = ["--model", "tests_pkg.mod:Net", "--model-args", '{"hidden": 16}']
BENCHMARK = ["--benchmark", "tests_pkg.mod:make"]
QUICK = ["--threads", "1", "--lca-test-size", "20", "--log-every", "4", "--sample-size", "8"]


def _counter(path: Path) -> list[str]:
    return ["--plugin", f'tests_pkg.mod:Counter:{{"path": "{path}"}}']


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding `tests_pkg` and its entry points (for PYTHONPATH)."""
    return write_package(tmp_path_factory.mktemp("own"))


def _env(package: Path, **extra: str) -> dict[str, str]:
    # no bytecode cache: a test edits the package's module between runs
    path = os.pathsep.join([str(package), str(ROOT)])
    return env(PYTHONPATH=path, PYTHONDONTWRITEBYTECODE="1", **extra)


def _agem(
    package: Path, *args: str, cwd: Path | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "agem", *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=_env(package, **extra), cwd=cwd, timeout=300
    )


def _start(package: Path, *args: str, **extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "agem", *args]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(package, **extra)
    )


def _kill_during_a_checkpoint(package: Path, out: Path, *args: str) -> None:
    """Start the run, SIGKILL it while its second checkpoint is being written."""
    proc = _start(package, *args, "--out", str(out), AGEM_TEST_PAUSE_BEFORE_RENAME=PAUSE)
    wait_for(lambda: (out / "checkpoint.pt").exists() and bool(temp_files(out)), timeout=240)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert results(out)["status"] == "running"


@pytest.mark.slow
def test_own_model_benchmark_and_plugin_run_resume_replay_and_sweep(
    package: Path, tmp_path: Path
) -> None:
    own = [*MODEL, *BENCHMARK, *QUICK]
    baseline = tmp_path / "baseline"
    done = _agem(
        package, "run", *own, *_counter(tmp_path / "baseline.count"), "--out", str(baseline)
    )
    assert done.returncode == 0, done.stderr
    saved = json.loads((baseline / "config.json").read_text())
    assert saved["model"] == "tests_pkg.mod:Net" and saved["model_args"] == {"hidden": 16}
    assert saved["benchmark"] == "tests_pkg.mod:make" and saved["n_experiences"] == 3
    assert saved["plugin"] == [f'tests_pkg.mod:Counter:{{"path": "{tmp_path / "baseline.count"}"}}']
    # 3 experiences of 80 samples in minibatches of 10: the plugin counted 24 steps
    assert (tmp_path / "baseline.count").read_text() == "24"

    # a real SIGKILL mid-run, then --resume: the same run, the plugin's state included
    killed = tmp_path / "killed"
    _kill_during_a_checkpoint(package, killed, "run", *own, *_counter(tmp_path / "killed.count"))
    resumed = _agem(package, "run", "--resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(killed, baseline)
    assert (tmp_path / "killed.count").read_text() == "24"

    # --config replays the run folder's config.json, own code and all
    replay = tmp_path / "replay"
    again = _agem(package, "run", "--config", str(baseline / "config.json"), "--out", str(replay))
    assert again.returncode == 0, again.stderr
    assert results(replay)["accuracy_matrix"] == results(baseline)["accuracy_matrix"]

    # a sweep over the model's arguments
    spec = tmp_path / "spec.toml"
    spec.write_text(
        "[base]\n"
        'benchmark = "tests_pkg.mod:make"\nmodel = "tests_pkg.mod:Net"\n'
        f'plugin = [\'tests_pkg.mod:Counter:{{"path": "{tmp_path / "sweep.count"}"}}\']\n'
        "lca_test_size = 20\nlog_every = 4\nsample_size = 8\n"
        "[grid]\nmodel_args = [{hidden = 8}, {hidden = 16}]\n"
    )
    sweep = tmp_path / "sweep"
    swept = _agem(
        package, "sweep", str(spec), "--out", str(sweep), "--workers", "1", "--threads", "1"
    )
    assert swept.returncode == 0, swept.stderr + swept.stdout
    with open(sweep / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["model_args"], r["seeds"]) for r in rows] == [("hidden=8", "1"), ("hidden=16", "1")]
    same = results(sweep / "model_args-hidden.16")
    assert same["accuracy_matrix"] == results(baseline)["accuracy_matrix"]


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_that_changed_code_no_longer_fits(tmp_path: Path) -> None:
    package = write_package(tmp_path / "own")
    out = tmp_path / "run"
    own = [*MODEL, *BENCHMARK, *QUICK, *_counter(tmp_path / "count")]
    _kill_during_a_checkpoint(package, out, "run", *own)
    module = package / "tests_pkg" / "mod.py"
    original = module.read_text()
    module.write_text(original.replace("WIDTH = 8", "WIDTH = 6"))  # narrower inputs

    def files() -> dict[str, bytes]:  # the run's files (not its lock or temporary files)
        return {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}

    before = files()
    assert "checkpoint.pt" in before
    refused = _agem(package, "run", "--resume", str(out))
    line = one_line_error(refused)
    assert line.startswith("agem: error: the checkpoint does not fit this run: checkpoint model")
    assert "has shape (16, 8), this model (16, 6)" in line
    assert "has the code of --benchmark tests_pkg.mod:make, --model tests_pkg.mod:Net" in line
    assert files() == before  # nothing loaded, nothing changed
    # a plugin whose load_state_dict fails on the checkpoint's state: one line too
    module.write_text(original.replace('int(state["count"])', 'int(state["counted"])'))
    failed = one_line_error(_agem(package, "run", "--resume", str(out)))
    assert failed == (
        "agem: error: loading the checkpoint into --benchmark tests_pkg.mod:make, --model "
        "tests_pkg.mod:Net, --plugin tests_pkg.mod:Counter failed: KeyError: 'counted'"
    )
    assert results(out)["status"] == "running"
    module.write_text(original)  # the code back as it was: the run resumes
    resumed = _agem(package, "run", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert results(out)["status"] == "complete"


@pytest.mark.slow
def test_names_registered_by_an_installed_package_work_from_the_command_line(
    package: Path, tmp_path: Path
) -> None:
    args = ["--model", "tiny_net", "--benchmark", "tiny_bench", "--strategy", "own_naive"]
    args += ["--strategy-args", '{"scale": 0.5}', "--benchmark-args", '{"size": 40}', *QUICK]
    done = _agem(package, "run", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "runs" / "tiny_bench-own_naive-seed0"  # the default run folder
    saved = json.loads((out / "config.json").read_text())
    assert [saved["model"], saved["benchmark"], saved["strategy"]] == args[1:6:2]
    assert saved["strategy_args"] == {"scale": 0.5}
    assert results(out)["status"] == "complete"
    assert len(results(out)["accuracy_matrix"]) == 3
    unknown = _agem(package, "run", "--model", "tiny_nett", cwd=tmp_path)
    assert one_line_error(unknown) == (
        "agem: error: --model must be one of mlp, resnet18, a name registered in the entry "
        "points agem.models (tiny_net), or an import path package.module:Attribute; "
        "got 'tiny_nett'"
    )


def test_entry_points_are_read_only_for_a_name_that_is_not_built_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def entry_points(**kwargs: Any) -> Any:
        raise LookupError("entry points read")

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    config = parse_run_argv(["--model", "mlp", "--benchmark", "split_digits", "--strategy", "gem"])
    assert (config.model, config.benchmark, config.strategy) == ("mlp", "split_digits", "gem")
    with pytest.raises(LookupError, match="entry points read"):
        RunConfig(model="somebody_elses_net")


def _main(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = main(list(argv))
    return code, err.getvalue()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--model", "no_such_pkg.mod:Net"],
            "--model no_such_pkg.mod:Net: no module named 'no_such_pkg' (install its package, "
            "or put the folder that holds it on PYTHONPATH)",
        ),
        (
            ["--model", "tests_pkg.mod:Nett"],
            "--model tests_pkg.mod:Nett: module tests_pkg.mod has no attribute 'Nett'",
        ),
        (
            [*MODEL[:2], "--model-args", '{"hiden": 3}'],
            '--model tests_pkg.mod:Net cannot take the arguments {"hiden": 3}: '
            "got an unexpected keyword argument 'hiden'",
        ),
        (
            ["--model", "tests_pkg.mod:WIDTH"],
            "--model tests_pkg.mod:WIDTH is not a class or function (it is of type int)",
        ),
        (
            ["--model", "mlp", "--model-args", '{"hidden": 3}'],
            "--model-args applies to a model of your own, not --model mlp",
        ),
        (
            [*BENCHMARK, "--benchmark-args", '{"sise": 3}'],
            '--benchmark tests_pkg.mod:make cannot take the arguments {"sise": 3}: '
            "got an unexpected keyword argument 'sise'",
        ),
        (
            ["--plugin", "tests_pkg.mod:Counter"],
            "--plugin tests_pkg.mod:Counter: missing a required argument: 'path'",
        ),
        (
            ["--plugin", "tests_pkg.mod:Counter:{bad"],
            "--plugin tests_pkg.mod:Counter: its arguments must be a JSON object like "
            "'{\"hidden\": 512}', got '{bad'",
        ),
        (
            ["--plugin", "tests_pkg"],
            "--plugin 'tests_pkg': write package.module:Class, or package.module:Class:JSON "
            "with its keyword arguments as a JSON object",
        ),
        (
            ["--strategy", "tests_pkg.mod:make"],
            "--strategy tests_pkg.mod:make is neither a strategy class (an agem.BaseTemplate "
            "subclass) nor an agem.strategies.registry.StrategySpec (it is <function make",
        ),
        (
            ["--strategy", "naive", "--strategy-args", '{"scale": 2}'],
            "--strategy-args applies to a strategy of your own, not --strategy naive",
        ),
        (
            [*MODEL[:2], "--fleet", "2", "--strategy", "naive"],
            "--fleet supports --model mlp without --task-labels",
        ),
    ],
    ids=[
        "no module",
        "no attribute",
        "unknown argument",
        "not callable",
        "arguments of a built-in model",
        "benchmark argument",
        "missing plugin argument",
        "plugin arguments not JSON",
        "plugin not a path",
        "not a strategy",
        "arguments of a built-in strategy",
        "fleet",
    ],
)
def test_a_wrong_name_or_argument_is_one_line_before_anything_is_written(
    argv: list[str], message: str, package: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.syspath_prepend(str(package))
    out = tmp_path / "run"
    code, err = _main("run", *argv, "--out", str(out))
    assert code == 2
    assert err.startswith(f"agem: error: {message}") and err.count("\n") == 1, err
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            [*MODEL[:2], "--model-args", '{"hidden": 0}', *BENCHMARK],
            "--model tests_pkg.mod:Net failed: ValueError: hidden must be positive, got 0",
        ),
        (
            ["--benchmark", "tests_pkg.mod:not_a_benchmark"],
            "--benchmark tests_pkg.mod:not_a_benchmark returned a list, not an "
            "agem.benchmarks.Benchmark (see agem.benchmarks.from_tensors)",
        ),
        (
            [*BENCHMARK, "--train-subset", "5"],
            "--benchmark tests_pkg.mod:make takes no train_subset",
        ),
        (
            [*BENCHMARK, "--benchmark-args", '{"n_experiences": 2}', "--n-experiences", "3"],
            "--n-experiences 3: --benchmark tests_pkg.mod:make gave 2 experiences",
        ),
        (
            ["--strategy", "tests_pkg.mod:OwnNaive", "--strategy-args", '{"scal": 2}', *BENCHMARK],
            "--strategy tests_pkg.mod:OwnNaive failed: TypeError: BaseTemplate.__init__() got an "
            "unexpected keyword argument 'scal'",
        ),
    ],
    ids=["model raises", "not a benchmark", "train subset", "experiences", "strategy raises"],
)
def test_own_code_that_fails_when_built_is_one_line_before_the_folder_is_written(
    argv: list[str], message: str, package: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.syspath_prepend(str(package))
    out = tmp_path / "run"
    code, err = _main("run", *argv, "--threads", "1", "--out", str(out))
    assert (code, err) == (2, f"agem: error: {message}\n")
    assert not out.exists()
