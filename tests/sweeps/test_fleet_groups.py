"""`agem sweep --fleet K`: runs that differ only in their seed train as one fleet, each
into its own run folder DIR/<run name>; other runs go alone; a killed sweep re-runs to
the end with its interrupted fleet members resumed as single runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agem.cli.main import main
from agem.runs.config import MAX_FLEET, RunConfig
from agem.sweeps.runner import fleet_limit, fleets, plan
from agem.sweeps.spec import parse_spec
from tests.helpers.runs import assert_no_process_mentions

GRID = """
[base]
benchmark = "permuted_digits"
n_experiences = {n}
hidden_sizes = [16]
epochs = {epochs}
lca_beta = 3
patterns_per_experience = 20
sample_size = 10
strategy = "agem"
[grid]
sampling = ["uniform", "balanced"]
seed = {seeds}
"""
NAMES = [f"sampling-{s}_seed-{seed}" for s in ("uniform", "balanced") for seed in (0, 1)]


def _spec_text(*, n: int = 2, epochs: int = 1, seeds: str = "[0, 1]") -> str:
    return GRID.format(n=n, epochs=epochs, seeds=seeds)


def _names(groups: list[list[object]]) -> list[list[str]]:
    return [[job.name for job in group] for group in groups]  # type: ignore[attr-defined]


def test_fleets_group_consecutive_seeds_of_one_configuration_only() -> None:
    spec = parse_spec(_spec_text(seeds="[0, 1, 2, 4]"))
    groups = _names(fleets(spec.jobs, 2))  # type: ignore[arg-type]
    agem = [g for g in groups if g[0].startswith("sampling-uniform")]
    balanced = [g for g in groups if g[0].startswith("sampling-balanced")]
    assert agem == [
        ["sampling-uniform_seed-0", "sampling-uniform_seed-1"],
        ["sampling-uniform_seed-2"],
        ["sampling-uniform_seed-4"],
    ]
    # balanced sampling: no fleet
    assert balanced == [[f"sampling-balanced_seed-{s}"] for s in (0, 1, 2, 4)]
    assert _names(fleets(spec.jobs, 3))[0] == [f"sampling-uniform_seed-{s}" for s in (0, 1, 2)]
    assert all(len(g) == 1 for g in fleets(spec.jobs, 1))


def test_fleet_auto_groups_every_seed_and_the_default_only_runs_on_a_gpu() -> None:
    spec = parse_spec(_spec_text(seeds="[0, 1, 2, 3, 4]"))
    groups = _names(fleets(spec.jobs, "auto"))  # type: ignore[arg-type]
    assert groups[0] == [f"sampling-uniform_seed-{s}" for s in range(5)]
    assert all(len(g) == 1 for g in groups[1:])  # balanced sampling: no fleet
    assert all(len(g) == 1 for g in fleets(spec.jobs, "gpu"))  # CPU runs: alone by default
    # a run on a CUDA device (which this machine may lack: the config alone says it)
    assert fleet_limit(RunConfig(device="cuda"), "gpu") == MAX_FLEET
    assert fleet_limit(RunConfig(device="cuda:1"), "gpu") == MAX_FLEET
    assert fleet_limit(RunConfig(), "gpu") == 1 and fleet_limit(RunConfig(), "auto") == MAX_FLEET
    assert fleet_limit(RunConfig(), 3) == 3


def test_sweep_fleet_option_is_checked_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(_spec_text())
    for bad in ("0", "many"):
        assert main(["sweep", str(spec), "--out", str(tmp_path / "x"), "--fleet", bad]) == 2
        err = capsys.readouterr().err
        assert "--fleet must be a positive integer or auto" in err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_plan_puts_only_runs_not_started_in_a_fleet(tmp_path: Path) -> None:
    spec = parse_spec(_spec_text(seeds="[0, 1, 2]"))
    (tmp_path / "sampling-uniform_seed-1").mkdir()
    (tmp_path / "sampling-uniform_seed-1" / "stray").write_text("killed before its config")
    tasks, done = plan(spec, tmp_path, threads=1, fleet=2)
    assert done == []
    by_runs = {task.run_names: task for task in tasks}
    assert set(by_runs) == {
        ("sampling-uniform_seed-1",),
        ("sampling-uniform_seed-0",),
        ("sampling-uniform_seed-2",),
        ("sampling-balanced_seed-0",),
        ("sampling-balanced_seed-1",),
        ("sampling-balanced_seed-2",),
    }
    assert "--overwrite" in by_runs[("sampling-uniform_seed-1",)].argv
    assert all("--fleet" not in task.argv for task in tasks)  # seeds 0 and 2: not consecutive
    (tmp_path / "sampling-uniform_seed-1" / "stray").unlink()
    tasks, _ = plan(spec, tmp_path, threads=1, fleet=2)
    fleet = [task for task in tasks if len(task.run_names) > 1]
    assert [task.run_names for task in fleet] == [
        ("sampling-uniform_seed-0", "sampling-uniform_seed-1")
    ]
    argv = list(fleet[0].argv)
    assert argv[argv.index("--fleet") + 1] == "2"
    members = argv[argv.index("--fleet-folders") + 1 :]
    assert members == [str(tmp_path / name) for name in fleet[0].run_names]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--fleet-folders", "a", "b"], "give --fleet K too"),
        (["--fleet", "2", "--fleet-folders", "a"], "needs 2 distinct member folders"),
        (["--fleet", "2", "--fleet-folders", "a", "a"], "needs 2 distinct member folders"),
        (["--fleet", "2", "--out", "x", "--fleet-folders", "a", "b"], "without --out"),
    ],
)
def test_run_refuses_unusable_fleet_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    folders = [a if a.startswith("-") or a.isdigit() else str(tmp_path / a) for a in extra]
    status = main(["run", "--benchmark", "permuted_digits", "--strategy", "agem", *folders])
    err = capsys.readouterr().err
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # refused before any folder was made


def test_sweep_spec_cannot_name_fleet_folders() -> None:
    with pytest.raises(ValueError, match="set by the sweep itself"):
        parse_spec(_spec_text().replace("[grid]", 'fleet_folders = ["a"]\n[grid]'))


def _sweep(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agem", "sweep", *args, "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _results(out: Path, name: str) -> dict[str, object]:
    return dict(json.loads((out / name / "results.json").read_text()))


def _check_complete(out: Path, result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr + result.stdout
    for name in NAMES:
        results = _results(out, name)
        assert results["status"] == "complete"
        config = json.loads((out / name / "config.json").read_text())
        assert config["fleet"] == 1 and f"seed-{config['seed']}" in name
    rows = (out / "summary.csv").read_text().splitlines()
    assert [row.split(",")[:2] for row in rows[1:]] == [["uniform", "2"], ["balanced", "2"]]


@pytest.mark.slow
def test_sweep_with_fleet_ends_like_one_without(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(_spec_text())
    out, alone = tmp_path / "fleet", tmp_path / "alone"
    result = _sweep(str(spec), "--out", str(out), "--fleet", "2")
    _check_complete(out, result)
    progress = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert len(progress) == 4
    assert [("(fleet of 2)" in line) for line in progress] == [True, True, False, False]
    assert sorted(p.name for p in (out / "logs").iterdir()) == [
        "fleet_sampling-uniform_seed-0.log",
        "sampling-balanced_seed-0.log",
        "sampling-balanced_seed-1.log",
    ]
    _check_complete(alone, _sweep(str(spec), "--out", str(alone)))
    for name in NAMES:
        fleet_matrix = _results(out, name)["accuracy_matrix"]
        alone_matrix = _results(alone, name)["accuracy_matrix"]
        assert isinstance(fleet_matrix, list) and isinstance(alone_matrix, list)
        for row_f, row_a in zip(fleet_matrix, alone_matrix, strict=True):
            assert all(abs(f - a) <= 0.02 for f, a in zip(row_f, row_a, strict=True)), name
    again = _sweep(str(spec), "--out", str(out), "--fleet", "2")
    assert again.returncode == 0 and "4 of 4 runs already finished" in again.stdout
    compare = subprocess.run(
        [sys.executable, "-m", "agem", "compare", str(out), "--no-plot", "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert compare.returncode == 0 and len(compare.stdout.splitlines()) == 3, compare.stderr


@pytest.mark.slow
def test_sweep_with_fleet_killed_mid_fleet_and_rerun_completes(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(_spec_text(n=4, epochs=20))
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "agem", "sweep", str(spec), "--out", str(out)]
    sweep = subprocess.Popen(
        [*command, "--fleet", "2", "--threads", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    partway: list[str] = []
    deadline = time.monotonic() + 240
    try:
        while not partway and time.monotonic() < deadline:
            if sweep.poll() is not None:
                pytest.fail("the sweep finished before it could be killed: make runs longer")
            for name in NAMES[:2]:  # the fleet runs first
                try:
                    results = _results(out, name)
                except (OSError, ValueError):
                    continue
                matrix = results.get("accuracy_matrix") or []
                if results.get("status") == "running" and isinstance(matrix, list) and matrix:
                    partway.append(name)
            time.sleep(0.1)
    finally:
        sweep.kill()
        sweep.wait()
    assert partway, "no fleet member got part-way"
    assert_no_process_mentions(out)  # the fleet process died with the sweep
    resumed = _sweep(str(spec), "--out", str(out), "--fleet", "2", timeout=600)
    _check_complete(out, resumed)
    for name in partway:  # continued from its checkpoint as a single run
        assert f"$ agem run --resume {out / name} " in (out / "logs" / f"{name}.log").read_text()
