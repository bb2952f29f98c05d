"""`agem.forked.run_forked`: results in order from real forked processes; a job that fails
or whose process is killed is run again in the caller (its exception reaches the caller);
no child outlives the call, or its parent; figures drawn at once equal those drawn one
after another. `agem.forked.Standby`: its child prepares while the caller goes on and
runs the jobs from its prepared state; the caller takes over whenever the child cannot
serve; the child never outlives its parent; a run's figures drawn from a standby that
imported matplotlib equal those drawn here, and matplotlib is never imported here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from agem.forked import Standby, can_fork, run_forked

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


_RESULTS: dict[str, Any] = {
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


@needs_fork
def test_figures_drawn_at_once_equal_figures_drawn_in_turn(tmp_path: Path) -> None:
    from agem.reporting.plots import write_run_plots

    results = _RESULTS
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


#: What `_prepare` did in this process (a forked child has its own copy).
PREPARED: list[int] = []


def _prepare(marker: Path | None = None) -> None:
    PREPARED.append(os.getpid())
    if marker is not None:
        marker.write_text(str(os.getpid()))


def _prepared() -> tuple[int, list[int]]:
    return os.getpid(), list(PREPARED)


def _pid_after_wait(marker: Path) -> int:
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return int(marker.read_text())


@needs_fork
def test_a_standby_prepares_in_its_child_and_runs_the_jobs_from_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("agem.forked.available_cpus", lambda: 2)
    PREPARED.clear()
    with Standby(_prepare) as standby:
        (pid, prepared), (other, seen) = standby.run([_prepared, _prepared], processes=2)
    assert PREPARED == []  # prepared in the child, not here
    assert pid == prepared[0] != os.getpid()  # the first share runs in the child itself
    assert other not in (pid, os.getpid()) and seen == prepared  # a fork of the child
    assert _gone(pid)


@needs_fork
def test_a_standby_whose_child_is_gone_prepares_and_runs_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agem.forked.available_cpus", lambda: 2)
    PREPARED.clear()
    marker = tmp_path / "standby.pid"
    standby = Standby(partial(_prepare, marker))
    child = _pid_after_wait(marker)
    os.kill(child, signal.SIGKILL)
    assert _gone(child, reaped=False)
    assert standby.run([_prepared], processes=1) == [(os.getpid(), [os.getpid()])]
    assert _gone(child)


@needs_fork
def test_jobs_that_cannot_be_pickled_or_that_fail_run_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("agem.forked.available_cpus", lambda: 2)
    PREPARED.clear()
    here = os.getpid()
    local = 7
    assert Standby(_prepare).run([lambda: local], processes=1) == [7]  # a lambda: not sent
    assert PREPARED == [here]  # so prepared here first

    def boom() -> None:
        raise KeyError("drawn badly")

    with pytest.raises(KeyError, match="drawn badly"), Standby(_prepare) as standby:
        standby.run([partial(boom)])
    with pytest.raises(ValueError, match="at least 1"), Standby(None) as standby:
        standby.run([_pid], processes=0)


@needs_fork
def test_a_standby_never_called_ends_with_close_or_with_its_parent(tmp_path: Path) -> None:
    marker = tmp_path / "closed.pid"
    standby = Standby(partial(_prepare, marker))
    child = _pid_after_wait(marker)
    standby.close()
    standby.close()  # idempotent
    assert _gone(child)

    marker = tmp_path / "orphan.pid"
    script = textwrap.dedent(
        f"""
        import os, time
        from pathlib import Path
        import agem.forked as forked

        forked.available_cpus = lambda: 2
        mark = lambda: Path({str(marker)!r}).write_text(str(os.getpid()))
        standby = forked.Standby(mark)
        time.sleep(60)
        """
    )
    caller = subprocess.Popen([sys.executable, "-c", script])
    try:
        child = _pid_after_wait(marker)
    finally:
        caller.kill()
        caller.wait()
    assert _gone(child, reaped=False)


def test_one_cpu_or_nothing_to_prepare_forks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agem.forked.available_cpus", lambda: 1)
    PREPARED.clear()
    assert Standby(_prepare).run([_prepared], processes=1) == [(os.getpid(), [os.getpid()])]
    assert Standby(None).run([_pid], processes=1) == [os.getpid()]


@needs_fork
def test_figures_drawn_from_a_standby_equal_figures_drawn_here(tmp_path: Path) -> None:
    """In a fresh interpreter (matplotlib not imported yet): the figures drawn through
    `plot_standby` are byte-identical to those the same process draws itself afterwards,
    and it had not imported matplotlib until then."""
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        import agem.forked as forked
        from agem.reporting.plots import plot_standby, write_run_plots

        forked.available_cpus = lambda: 2
        results = json.loads({json.dumps(json.dumps(_RESULTS))!s})
        with plot_standby() as standby:
            paths = write_run_plots(results, {str(tmp_path / "a")!r}, standby=standby)
        print(json.dumps([p.name for p in paths]))
        print("matplotlib" in sys.modules)
        write_run_plots(results, {str(tmp_path / "b")!r}, processes=1)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    ).stdout.splitlines()
    assert json.loads(out[0]) == ["accuracy_matrix.png", "accuracy_over_time.png", "lca.png"]
    assert out[1] == "False"
    for name in json.loads(out[0]):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
