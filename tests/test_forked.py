"""`agem.forked.run_forked`: results in order from real forked processes; a job that fails
or whose process is killed is run again in the caller (its exception reaches the caller);
no child outlives the call, or its parent; figures drawn at once equal those drawn one
after another."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from functools import partial
from pathlib import Path

import pytest

from agem.forked import can_fork, run_forked

needs_fork = pytest.mark.skipif(not can_fork(), reason="run_forked forks only on Linux")


def _pid() -> int:
    return os.getpid()


def _gone(pid: int, *, reaped: bool = True, timeout: float = 10.0) -> bool:
    """Whether process `pid` has ended within `timeout` seconds; with `reaped`, also
    been waited for (not a zombie: a process whose parent died may stay one where
    nothing reaps orphans, as in some containers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return not reaped
        time.sleep(0.05)
    return False


@needs_fork
def test_each_job_runs_in_its_own_process_and_results_keep_their_order() -> None:
    pids = run_forked([_pid, _pid, _pid], processes=3)
    assert pids[0] == os.getpid()
    assert len(set(pids)) == 3
    assert run_forked([lambda: "a", lambda: [1, 2], lambda: {"c": 3}]) == ["a", [1, 2], {"c": 3}]


def test_one_process_runs_every_job_here_in_order() -> None:
    order: list[int] = []

    def job(i: int) -> int:
        order.append(i)
        return os.getpid()

    jobs = [partial(job, i) for i in range(4)]
    assert run_forked(jobs, processes=1) == [os.getpid()] * 4
    assert order == [0, 1, 2, 3]
    assert run_forked([]) == []
    with pytest.raises(ValueError, match="at least 1"):
        run_forked([_pid], processes=0)


@needs_fork
def test_a_failing_job_raises_its_own_exception_here() -> None:
    def boom() -> None:
        raise KeyError("drawn badly")

    with pytest.raises(KeyError, match="drawn badly"):
        run_forked([_pid, boom], processes=2)


@needs_fork
def test_a_job_whose_process_is_killed_is_run_again_here() -> None:
    parent = os.getpid()

    def killed_in_a_child() -> int:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return os.getpid()

    assert run_forked([_pid, killed_in_a_child], processes=2) == [parent, parent]


@needs_fork
def test_no_child_outlives_an_interrupted_call(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"

    def slow() -> None:
        marker.write_text(str(os.getpid()))
        time.sleep(60)

    def interrupted() -> None:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_forked([interrupted, slow], processes=2)
    assert time.monotonic() - started < 30
    assert _gone(int(marker.read_text()))


@needs_fork
def test_children_die_with_their_parent(tmp_path: Path) -> None:
    """SIGKILL the process that called `run_forked`: its children go too."""
    marker = tmp_path / "child.pid"
    script = textwrap.dedent(
        f"""
        import os, time
        from pathlib import Path
        from agem.forked import run_forked

        def slow():
            Path({str(marker)!r}).write_text(str(os.getpid()))
            time.sleep(60)

        run_forked([lambda: time.sleep(60), slow], processes=2)
        """
    )
    caller = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(marker.read_text())
    finally:
        caller.kill()
        caller.wait()
    assert _gone(child, reaped=False)


@needs_fork
def test_figures_drawn_at_once_equal_figures_drawn_in_turn(tmp_path: Path) -> None:
    from agem.reporting.plots import write_run_plots

    results = {
        "strategy": "agem",
        "benchmark": "permuted_digits",
        "seed": 1,
        "accuracy_matrix": [[0.9, None], [0.8, 0.85]],
        "evaluations": [
            {"train_iterations": 10, "after_experience": 0, "accuracy": {0: 0.9, 1: 0.2}},
            {"train_iterations": 20, "after_experience": 1, "accuracy": {0: 0.8, 1: 0.85}},
        ],
        "lca_curves": [[0.1, 0.5, 0.9], [0.2, 0.6, 0.85]],
    }
    at_once = write_run_plots(results, tmp_path / "a", formats=("png", "svg"), processes=3)
    in_turn = write_run_plots(results, tmp_path / "b", formats=("png", "svg"), processes=1)
    assert (
        [p.name for p in at_once]
        == [p.name for p in in_turn]
        == [
            "accuracy_matrix.png",
            "accuracy_matrix.svg",
            "accuracy_over_time.png",
            "accuracy_over_time.svg",
            "lca.png",
            "lca.svg",
        ]
    )
    for a, b in zip(at_once, in_turn, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]  # no temp
