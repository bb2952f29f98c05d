"""Warm workers (`agem.sweeps.forkserver`): a run forked from a warm worker is a fresh
`python -m agem` run, whatever ran before it in that worker, and a worker killed mid-run
takes only its own run with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agem.sweeps.engines import LocalEngine, Task
from agem.sweeps.forkserver import WarmWorker, stop_workers
from tests.helpers.runs import METRICS, TINY, env

PROBE = "tests.sweeps.warm_probe"


def _worker(**options: object) -> WarmWorker:
    worker = WarmWorker(env=env(), **options)  # type: ignore[arg-type]
    worker.start()
    worker.wait_ready()
    return worker


def _run(worker: WarmWorker, log: Path, *argv: str, omp_threads: int | None = 1) -> int:
    worker.submit(argv=argv, log=log, omp_threads=omp_threads)
    return worker.wait()


def _without_argv(state: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in state.items() if k != "argv"}


@pytest.mark.slow
def test_a_run_after_a_polluting_one_sees_a_fresh_interpreter(tmp_path: Path) -> None:
    """The warm-up and a first run change torch's RNG, threads, default dtype and
    deterministic flags, signal handlers, cwd, environment, logging, warnings, sys.path
    and monkey-patch torch; the next run in the same worker sees none of it: its state
    is that of `python -m` in a new interpreter."""
    worker = _worker(module=PROBE, warm_up=("--pollute",))
    try:
        assert worker.threads is not None  # the warm-up started no thread (pool)
        assert worker.threads[1] == worker.threads[0]
        assert _run(worker, tmp_path / "first.log", str(tmp_path / "first.json")) == 0
        dirty = ("--pollute", "--patch", str(tmp_path / "dirty.json"))
        assert _run(worker, tmp_path / "dirty.log", *dirty) == 0
        assert _run(worker, tmp_path / "second.log", str(tmp_path / "second.json")) == 0
    finally:
        stop_workers([worker])
    cold = subprocess.run(
        [sys.executable, "-m", PROBE, str(tmp_path / "cold.json")],
        env=env(OMP_NUM_THREADS="1"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
    )
    assert cold.returncode == 0, cold.stderr
    states = {n: json.loads((tmp_path / f"{n}.json").read_text()) for n in ("first", "second")}
    expected = json.loads((tmp_path / "cold.json").read_text())
    dirty = json.loads((tmp_path / "dirty.json").read_text())
    assert states["first"] == expected
    assert states["second"] == expected
    same = {k for k in expected if dirty[k] == expected[k]}
    assert same <= {"seed", "rand", "stdin", "main"}  # the probe does pollute the rest
    assert (tmp_path / "second.log").read_text().strip() == f"probe wrote {tmp_path}/second.json"


@pytest.mark.slow
def test_threads_follow_the_task_like_omp_num_threads_in_a_new_process(tmp_path: Path) -> None:
    worker = _worker(module=PROBE, warm_up=())
    try:
        assert _run(worker, tmp_path / "a.log", str(tmp_path / "a.json"), omp_threads=2) == 0
        assert _run(worker, tmp_path / "b.log", str(tmp_path / "b.json"), omp_threads=None) == 0
    finally:
        stop_workers([worker])
    cold = subprocess.run(
        [sys.executable, "-m", PROBE, str(tmp_path / "c.json")],
        env=env(),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert cold.returncode == 0
    assert json.loads((tmp_path / "a.json").read_text())["threads"] == 2
    b = json.loads((tmp_path / "b.json").read_text())
    assert b["threads"] == json.loads((tmp_path / "c.json").read_text())["threads"]


@pytest.mark.slow
def test_a_second_agem_run_in_a_warm_worker_equals_a_cold_one(tmp_path: Path) -> None:
    argv = ["run", *TINY, "--strategy", "agem", "--seed", "3"]
    worker = _worker()
    try:
        for name in ("first", "second"):
            code = _run(worker, tmp_path / f"{name}.log", *argv, "--out", str(tmp_path / name))
            assert code == 0, (tmp_path / f"{name}.log").read_text()
    finally:
        stop_workers([worker])
    cold = subprocess.run(
        [sys.executable, "-m", "agem", *argv, "--out", str(tmp_path / "cold")],
        env=env(OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert cold.returncode == 0, cold.stderr
    expected = json.loads((tmp_path / "cold" / "results.json").read_text())
    config = json.loads((tmp_path / "cold" / "config.json").read_text())
    for name in ("first", "second"):
        results = json.loads((tmp_path / name / "results.json").read_text())
        assert {k: results[k] for k in METRICS} == {k: expected[k] for k in METRICS}
        saved = json.loads((tmp_path / name / "config.json").read_text())
        assert saved["environment"]["threads"] == config["environment"]["threads"]
        log = (tmp_path / f"{name}.log").read_text()
        assert f"run folder: {tmp_path / name}" in log  # the run's stdout is its log


@pytest.mark.slow
def test_a_crashing_run_leaves_the_worker_serving(tmp_path: Path) -> None:
    worker = _worker(warm_up=())
    try:
        assert _run(worker, tmp_path / "bad.log", "run", "--strategy", "nonsense") == 2
        assert "nonsense" in (tmp_path / "bad.log").read_text()
        assert _run(worker, tmp_path / "version.log", "--version") == 0
        assert (tmp_path / "version.log").read_text().startswith("agem ")
    finally:
        stop_workers([worker])


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_local_engine_runs_tasks_in_warm_forks(tmp_path: Path) -> None:
    tasks = [
        Task(f"v{i}", ("--version",), tmp_path / "logs" / f"v{i}.log", omp_threads=1)
        for i in range(3)
    ]
    outcomes = list(LocalEngine(workers=2).run(tasks))
    assert sorted(o.task.name for o in outcomes) == ["v0", "v1", "v2"]
    assert all(o.returncode == 0 for o in outcomes)
    for task in tasks:
        lines = task.log.read_text().splitlines()
        assert lines[0] == "$ agem --version" and lines[1].startswith("agem ")


@pytest.mark.slow
def test_sigkill_of_a_worker_fails_only_its_run_and_a_new_worker_takes_over(
    tmp_path: Path,
) -> None:
    """The engine reports the run of a killed worker as killed (-9), its run dies with it,
    and the next task goes to a fresh worker."""
    worker = _worker(module=PROBE, warm_up=())
    server = worker.process
    assert server is not None
    try:
        worker.submit(
            argv=["--sleep", str(tmp_path / "a.json")], log=tmp_path / "a.log", omp_threads=1
        )
        deadline = time.monotonic() + 60
        while not (tmp_path / "a.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        runs = _children(server.pid)
        assert runs
        os.kill(server.pid, signal.SIGKILL)
        assert worker.wait() == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in runs) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in runs)
        assert _run(worker, tmp_path / "b.log", str(tmp_path / "b.json")) == 0
        assert worker.process is not server
    finally:
        stop_workers([worker])
