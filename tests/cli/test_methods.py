"""`agem run` with SI, MAS, RWalk, progressive networks and the running-Fisher EWC: each
completes on the embedded data, resumes after SIGKILL to the same result, and the
options and refusals are those of the command line's other strategies."""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

import pytest

from agem.cli.applicability import ignored_options
from agem.cli.main import main
from agem.runs.config import RunConfig
from tests.helpers.runs import TINY, agem, one_line_error, results, start, temp_files, wait_for
from tests.runs.test_resume import PAUSE, assert_same_run

NEW = ("si", "mas", "rwalk", "pnn")
EXTRA = {
    "si": [],
    "mas": [],
    "rwalk": [],
    "pnn": ["--task-labels"],
    "ewc-running": ["--ewc-mode", "running", "--lr", "0.03", "--ewc-lambda", "10"],
}


def _argv(name: str) -> list[str]:
    strategy = "ewc" if name == "ewc-running" else name
    return ["run", *TINY, "--strategy", strategy, *EXTRA[name]]


@pytest.mark.parametrize("name", list(EXTRA))
def test_each_method_completes_on_the_embedded_benchmark(name: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main([*_argv(name), "--out", str(out)]) == 0
    done = results(out)
    assert done["status"] == "complete" and done["experiences_done"] == 4
    assert 0.0 < done["A_T"] <= 1.0
    if name == "pnn":  # earlier columns are frozen: nothing is forgotten
        assert done["F_T"] == 0.0
        acc = done["accuracy_matrix"]
        assert all(acc[i][j] == acc[j][j] for j in range(4) for i in range(j, 4))


def test_pnn_without_task_labels_is_refused_in_one_line() -> None:
    proc = agem("run", "--strategy", "pnn", "--n-experiences", "2")
    line = one_line_error(proc)
    assert line == (
        "agem: error: --strategy pnn needs --task-labels and --model mlp "
        "(one column and one head per task)"
    )


@pytest.mark.parametrize("strategy", NEW)
def test_cuda_graph_refuses_the_new_strategies_and_the_fleet_pnn(strategy: str) -> None:
    base = RunConfig(strategy=strategy, task_labels=strategy == "pnn")
    if strategy == "pnn":
        with pytest.raises(ValueError, match=r"--fleet supports .*not pnn"):
            dataclasses.replace(base, fleet=2)
    else:
        assert dataclasses.replace(base, fleet=2).fleet == 2
    with pytest.raises(ValueError, match=f"--cuda-graph supports .*not {strategy}"):
        dataclasses.replace(base, cuda_graph=True, device="cuda")


def test_fleet_refusal_is_one_line_on_the_command_line() -> None:
    line = one_line_error(agem("run", "--strategy", "pnn", "--task-labels", "--fleet", "2"))
    assert line.startswith("agem: error: --fleet supports --strategy") and "pnn" in line


def test_help_lists_the_methods_and_their_options() -> None:
    proc = agem("run", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for word in ("si", "mas", "rwalk", "pnn", "running"):
        assert word in text
    for option in ("--si-lambda", "--si-xi", "--mas-lambda", "--rwalk-lambda", "--rwalk-alpha"):
        assert option in text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("si_lambda", -1.0, "--si-lambda must be a finite number >= 0"),
        ("si_xi", 0.0, "--si-xi must be a finite number > 0"),
        ("mas_lambda", float("inf"), "--mas-lambda must be"),
        ("rwalk_lambda", -0.5, "--rwalk-lambda must be"),
        ("rwalk_alpha", 0.0, "--rwalk-alpha must be a finite number in 0..1"),
        ("rwalk_alpha", 1.5, "--rwalk-alpha must be"),
    ],
)
def test_option_bounds(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunConfig(**{field: value})


def test_options_of_another_strategy_warn() -> None:
    config = RunConfig(strategy="naive")
    assert ignored_options(config, ["si_lambda", "rwalk_alpha"]) == [
        "--si-lambda does not apply to --strategy naive (ignored; it is read by si)",
        "--rwalk-alpha does not apply to --strategy naive (ignored; it is read by rwalk)",
    ]
    assert ignored_options(RunConfig(strategy="mas"), ["mas_lambda"]) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rwalk", "pnn"])
def test_sigkill_during_a_checkpoint_then_resume_gives_the_same_run(
    name: str, tmp_path: Path
) -> None:
    baseline = tmp_path / "baseline"
    assert main([*_argv(name), "--out", str(baseline)]) == 0
    out = tmp_path / "run"
    proc = start(*_argv(name), "--out", str(out), AGEM_TEST_PAUSE_BEFORE_RENAME=PAUSE)
    wait_for(lambda: (out / "checkpoint.pt").exists() and bool(temp_files(out)))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert results(out)["status"] == "running"
    resumed = agem("run", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(out, baseline)
