"""Engines run many `agem` command lines and report each one as it finishes.

An engine knows nothing about continual learning: it receives `Task`s (an `agem`
argument list and a log file) and yields an `Outcome` per task, in completion order.
`LocalEngine` runs N worker processes on this machine; `RayEngine` runs each task as a
Ray task on a cluster (or a local Ray instance). Both start the same child process,
`python -m agem ...`, through `run_task`, so a run behaves the same wherever it runs;
on Linux the child dies with its parent (PR_SET_PDEATHSIG), so a killed sweep never
leaves a run behind that a re-run would race. A log is never opened through a
symbolic link.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agem.atomic import open_append
from agem.extras import require

#: Seconds to reach a Ray cluster before giving up (`agem sweep --ray-timeout`).
RAY_TIMEOUT = 30.0

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Task:
    """One command line for `agem` (e.g. `("run", "--seed", "0", ...)`) and its log;
    `runs` names the run folders it writes when that is not just `name` (a fleet)."""

    name: str
    argv: tuple[str, ...]
    log: Path
    #: Torch's default thread count in the child (OMP_NUM_THREADS), so that parallel runs
    #: share the cores; the run's own rule (one thread for a small MLP) may choose fewer.
    omp_threads: int | None = None
    runs: tuple[str, ...] = ()

    @property
    def run_names(self) -> tuple[str, ...]:
        """The names of the run folders this task writes."""
        return self.runs or (self.name,)


@dataclass(frozen=True)
class Outcome:
    """How a task ended: its exit status and wall-clock seconds."""

    task: Task
    returncode: int
    seconds: float


class Engine(Protocol):
    """Runs tasks and yields their outcomes as they finish."""

    def run(self, tasks: Sequence[Task]) -> Iterator[Outcome]: ...


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setpgid(0, 0)


def start_task(task: Task) -> subprocess.Popen[bytes]:
    """Start `python -m agem <argv>` with output to the task's log (after a line with
    the command); it dies with us."""
    task.log.parent.mkdir(parents=True, exist_ok=True)
    with open_append(task.log) as log:
        log.write(("$ agem " + " ".join(task.argv) + "\n").encode())
        log.flush()
        env = None
        if task.omp_threads is not None:
            env = {**os.environ, "OMP_NUM_THREADS": str(task.omp_threads)}
        return subprocess.Popen(
            [sys.executable, "-m", "agem", *task.argv],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )


def run_task(task: Task) -> Outcome:
    """Run one task to its end in a child process (what a Ray task does)."""
    start = time.perf_counter()
    process = start_task(task)
    try:
        returncode = process.wait()
    finally:
        if process.poll() is None:
            _stop([process])
    return Outcome(task, returncode, time.perf_counter() - start)


def _stop(processes: Sequence[subprocess.Popen[bytes]], grace: float = 30.0) -> None:
    """SIGTERM the children (a run then records itself as interrupted), then wait."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LocalEngine:
    """`workers` child processes at a time on this machine."""

    def __init__(self, *, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers

    def run(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        waiting = list(tasks)
        running: dict[subprocess.Popen[bytes], tuple[Task, float]] = {}
        try:
            while waiting or running:
                while waiting and len(running) < self.workers:
                    task = waiting.pop(0)
                    running[start_task(task)] = (task, time.perf_counter())
                finished = [p for p in running if p.poll() is not None]
                if not finished:
                    time.sleep(0.05)
                    continue
                for process in finished:
                    task, started = running.pop(process)
                    yield Outcome(task, int(process.returncode), time.perf_counter() - started)
        finally:
            _stop(list(running))


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a Ray address `HOST:PORT` or `ray://HOST:PORT`; None for the
    addresses Ray resolves itself ("auto", "local")."""
    text = address.removeprefix("ray://")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _check_reachable(address: str, timeout: float) -> None:
    """A one-line ValueError unless something accepts connections at `address` within
    `timeout` seconds (Ray itself would retry a refused address for minutes)."""
    where = _host_port(address)
    if where is None:
        return
    try:
        with socket.create_connection(where, timeout=timeout):
            pass
    except TimeoutError:
        raise ValueError(
            f"cannot reach Ray at {address}: no answer within {timeout:g} s (see --ray-timeout)"
        ) from None
    except OSError as err:
        raise ValueError(f"cannot reach Ray at {address}: {err.strerror or err}") from None


def _mute_stderr() -> int:
    """Point file descriptor 2 at /dev/null; return a duplicate of what it was."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    return saved


def _unmute_stderr(saved: int) -> None:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)


@contextlib.contextmanager
def _quiet_stderr(quiet: bool) -> Iterator[None]:
    """Send what is written to file descriptor 2 (Ray's C++ warnings, "worker died"
    lines) to /dev/null while `quiet`."""
    if not quiet:
        yield
        return
    saved = _mute_stderr()
    try:
        yield
    finally:
        _unmute_stderr(saved)


class RayEngine:
    """Each task a Ray task (one CPU each, or `cpus_per_task`).

    `address` joins a running cluster (`ray start --head` prints it); without one,
    `RAY_ADDRESS` is used if set, else a local Ray instance with `workers` CPUs is
    started and stopped again. The cluster's machines must see DIR (a shared file
    system) and have this agem installed.

    `connect()` (called by `run` if not before) gives up with a one-line ValueError
    when the cluster cannot be reached within `timeout` seconds. Unless `quiet=False`,
    what Ray writes to the terminal (its warnings, "worker died" lines) is discarded.
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        workers: int = 1,
        cpus_per_task: float = 1.0,
        timeout: float = RAY_TIMEOUT,
        quiet: bool = True,
    ) -> None:
        require("ray")  # fail now, in one line naming the pip command
        if not timeout > 0:
            raise ValueError(f"the Ray timeout must be positive, got {timeout}")
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.workers = workers
        self.cpus_per_task = cpus_per_task
        self.timeout = timeout
        self.quiet = quiet
        self._owned = False

    def connect(self) -> None:
        """Join (or start) Ray now, within `timeout` seconds; a one-line ValueError if
        that fails."""
        import ray

        if ray.is_initialized():
            return
        if self.address:
            _check_reachable(self.address, self.timeout)
        failure: list[BaseException] = []

        def init() -> None:
            try:
                self._init()
            except BaseException as err:  # reported by the waiting thread
                failure.append(err)

        saved = _mute_stderr() if self.quiet else None
        worker = threading.Thread(target=init, name="ray-init", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            if saved is not None:  # Ray keeps trying (muted); our own lines still show
                sys.stderr = os.fdopen(saved, "w", buffering=1)
            where = self.address or "a local instance"
            raise ValueError(
                f"cannot reach Ray at {where}: no connection within {self.timeout:g} s "
                "(see --ray-timeout)"
            )
        if saved is not None:
            _unmute_stderr(saved)
        if failure:
            raise failure[0]
        self._owned = True

    def _init(self) -> None:
        """Connect to Ray (a one-line ValueError if it refuses)."""
        import ray

        env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
        runtime_env: dict[str, Any] = {"env_vars": env} if env else {}
        try:
            if self.address:
                ray.init(
                    address=self.address,
                    runtime_env=runtime_env or None,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                )
                return
            ray.init(
                address="local",
                num_cpus=self.workers,
                include_dashboard=False,
                runtime_env=runtime_env or None,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
        except (ConnectionError, RuntimeError) as err:
            where = self.address or "a local instance"
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"cannot start or reach Ray at {where}: {first}") from None

    def run(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        with _quiet_stderr(self.quiet):
            yield from self._run(tasks)

    def _run(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        import ray

        self.connect()
        remote = ray.remote(num_cpus=self.cpus_per_task, max_retries=0)(run_task)
        pending = {remote.remote(task): task for task in tasks}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    task = pending.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayError:
                        yield Outcome(task, 1, 0.0)  # a worker died: the run is resumable
        finally:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            if self._owned:
                self._owned = False
                ray.shutdown()
