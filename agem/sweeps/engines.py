"""Engines run many `agem` command lines and report each one as it finishes.

An engine knows nothing about continual learning: it receives `Task`s (an `agem`
argument list and a log file) and yields an `Outcome` per task, in completion order.
`LocalEngine` runs N workers on this machine; `RayEngine` runs them on a Ray cluster (or
a local Ray instance), one Ray actor per worker. How a run's process starts is the
engines' `processes` option:

- "warm" (the default): each worker is a warm fork server (`agem.sweeps.forkserver`)
  and each run a fork of it, which behaves as `python -m agem ...` would, without the
  seconds an interpreter takes to import torch and agem;
- "cold": each run a new `python -m agem ...` process (`run_task`), as simple as it gets
  (for debugging, and to measure what warm workers save);
- "inline": each worker calls its runs in its own process, without isolation (a crash
  takes the worker with it): only to measure the floor of a sweep's cost.

On Linux every process dies with its parent (PR_SET_PDEATHSIG), so a killed sweep never
leaves a run behind that a re-run would race. A log is never opened through a symbolic
link.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from agem.atomic import open_append
from agem.extras import install_hint, require
from agem.sweeps.forkserver import WarmWorker, die_with_parent, stop_workers

#: Seconds to reach a Ray cluster before giving up (`agem sweep --ray-timeout`).
RAY_TIMEOUT = 30.0

#: How a run's process starts (see the module's docstring).
Processes = Literal["warm", "cold", "inline"]
PROCESSES: tuple[Processes, ...] = ("warm", "cold", "inline")


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


def _check_processes(processes: str) -> None:
    if processes not in PROCESSES:
        raise ValueError(f"processes must be one of {', '.join(PROCESSES)}, got {processes!r}")


def _open_log(task: Task) -> Any:
    """The task's log, opened to append, after a line with the command."""
    task.log.parent.mkdir(parents=True, exist_ok=True)
    log = open_append(task.log)
    log.write(("$ agem " + " ".join(task.argv) + "\n").encode())
    log.flush()
    return log


def start_task(task: Task, base: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `python -m agem <argv>` with output to the task's log (after a line with
    the command); it dies with us. `base`: its environment (default: ours)."""
    with _open_log(task) as log:
        env = None if base is None else dict(base)
        if task.omp_threads is not None:
            env = {**(env or os.environ), "OMP_NUM_THREADS": str(task.omp_threads)}
        return subprocess.Popen(
            [sys.executable, "-m", "agem", *task.argv],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )


def with_this_package(env: dict[str, str]) -> dict[str, str]:
    """`env` with the folder this agem was imported from first in PYTHONPATH, so that a
    child process imports it too (on a Ray node: the copy Ray unpacked there)."""
    root = str(Path(__file__).resolve().parents[2])
    path = [root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {**env, "PYTHONPATH": os.pathsep.join(dict.fromkeys(path))}


def run_task_on_node(task: Task) -> Outcome:
    """`run_task` on a Ray node: the child imports the agem this process imported."""
    return run_task(task, base=with_this_package(dict(os.environ)))


def run_task(task: Task, *, base: dict[str, str] | None = None) -> Outcome:
    """Run one task to its end in a child process (`base`: its environment)."""
    start = time.perf_counter()
    process = start_task(task, base)
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


def submit_task(worker: WarmWorker, task: Task) -> None:
    """Hand `task` to a warm worker (its log gets the command line first)."""
    with _open_log(task):
        pass
    worker.submit(argv=task.argv, log=task.log, omp_threads=task.omp_threads)


class LocalEngine:
    """`workers` runs at a time on this machine, each in its own process (`processes`:
    "warm" forks of warm workers, "cold" new interpreters; see the module docstring)."""

    def __init__(self, *, workers: int, processes: Processes = "warm") -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        _check_processes(processes)
        self.workers = workers
        self.processes = processes

    def run(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        if self.processes == "cold":
            yield from self._run_cold(tasks)
        elif tasks:
            yield from self._run_warm(tasks)

    def _run_warm(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        waiting = list(tasks)
        inline = self.processes == "inline"
        workers = [WarmWorker(inline=inline) for _ in range(min(self.workers, len(tasks)))]
        running: dict[WarmWorker, tuple[Task, float]] = {}
        try:
            for worker in workers:
                worker.start()
            while waiting or running:
                for worker in workers:
                    if waiting and worker not in running:
                        task = waiting.pop(0)
                        submit_task(worker, task)
                        running[worker] = (task, time.perf_counter())
                for worker in select.select(list(running), [], [], 1.0)[0]:
                    code = worker.poll()
                    if worker.busy:
                        continue
                    task, started = running.pop(worker)
                    yield Outcome(task, 1 if code is None else code, time.perf_counter() - started)
        finally:
            stop_workers(workers)

    def _run_cold(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
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


class RayWorker:
    """A Ray actor's body: one warm worker (a fork server on the actor's node) that runs
    the tasks sent to this actor, one at a time. The server gets the actor's import path
    (where Ray put the shipped package) in PYTHONPATH."""

    def __init__(self, *, inline: bool = False) -> None:
        self.worker = WarmWorker(inline=inline, env=with_this_package(dict(os.environ)))
        self.worker.start()

    def run(self, task: Task) -> Outcome:
        """Run `task` to its end in a fork of the warm worker."""
        start = time.perf_counter()
        try:
            submit_task(self.worker, task)
            returncode = self.worker.wait()
        finally:
            if self.worker.busy:  # Ray cancelled us: the run must not outlive the task
                stop_workers([self.worker])
        return Outcome(task, returncode, time.perf_counter() - start)


def _cannot_import_agem(err: BaseException) -> ValueError | None:
    """A one-line error when a Ray worker failed because it cannot import agem."""
    if "No module named 'agem" not in str(err):
        return None
    return ValueError(
        "the Ray cluster's workers cannot import agem: let the sweep ship it (without "
        f"--ray-package installed), or install it on every node ({install_hint('ray')})"
    )


class RayEngine:
    """The runs on Ray: one Ray actor per worker (one CPU each, or `cpus_per_task`), each
    holding a warm worker that forks each run (`processes="warm"`, the default), or one
    Ray task per run starting `python -m agem` (`processes="cold"`).

    `address` joins a running cluster (`ray start --head` prints it); without one,
    `RAY_ADDRESS` is used if set, else a local Ray instance with `workers` CPUs is
    started and stopped again. On a cluster there are as many workers as its CPUs allow.
    The cluster's machines must see DIR (a shared file system). This agem is shipped to
    them with Ray's runtime environment (`py_modules`) unless `ship=False` (the nodes
    have this agem installed); torch and agem's other dependencies must be installed there.

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
        processes: Processes = "warm",
        ship: bool = True,
    ) -> None:
        require("ray")  # fail now, in one line naming the pip command
        if not timeout > 0:
            raise ValueError(f"the Ray timeout must be positive, got {timeout}")
        _check_processes(processes)
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.workers = workers
        self.cpus_per_task = cpus_per_task
        self.timeout = timeout
        self.quiet = quiet
        self.processes = processes
        self.ship = ship
        self._owned = False

    def connect(self) -> None:
        """Join (or start) Ray now, within `timeout` seconds; a one-line ValueError if
        that fails."""
        import ray

        if ray.is_initialized():
            return
        if not self.address:
            # A local instance is started from this thread: Ray's own processes (GCS,
            # raylet) are told to die when the thread that started them ends.
            saved = _mute_stderr() if self.quiet else None
            try:
                self._init()
            finally:
                if saved is not None:
                    _unmute_stderr(saved)
            self._owned = True
            return
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
            raise ValueError(
                f"cannot reach Ray at {self.address}: no connection within {self.timeout:g} s "
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
        if self.ship:  # this very package, zipped and unpacked on each node's import path
            runtime_env["py_modules"] = [str(Path(__file__).resolve().parents[1])]
            runtime_env["excludes"] = ["__pycache__", "*.pyc"]
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
        self.connect()
        if self.processes == "cold":
            yield from self._run_cold(tasks)
        elif tasks:
            yield from self._run_warm(tasks)

    def _finish(self) -> None:
        import ray

        if self._owned:
            self._owned = False
            ray.shutdown()

    def _run_cold(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        import ray

        remote = ray.remote(num_cpus=self.cpus_per_task, max_retries=0)(run_task_on_node)
        pending = {remote.remote(task): task for task in tasks}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    task = pending.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayError as err:
                        missing = _cannot_import_agem(err)
                        if missing is not None:
                            raise missing from None
                        yield Outcome(task, 1, 0.0)  # a worker died: the run is resumable
        finally:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            self._finish()

    def _actors(self, tasks: int) -> int:
        """How many workers: `workers` on our own instance, else what the cluster's CPUs
        allow; never more than there are tasks."""
        import ray

        if self._owned and not self.address:
            count = self.workers
        else:
            cpus = float(ray.cluster_resources().get("CPU", 1.0))
            count = max(1, math.floor(cpus / self.cpus_per_task))
        return max(1, min(count, tasks))

    def _run_warm(self, tasks: Sequence[Task]) -> Iterator[Outcome]:
        import ray

        inline = self.processes == "inline"
        actor: Any = ray.remote(num_cpus=self.cpus_per_task, max_restarts=0)(RayWorker)
        free: list[Any] = [actor.remote(inline=inline) for _ in range(self._actors(len(tasks)))]
        actors = list(free)
        waiting = list(tasks)
        pending: dict[Any, tuple[Any, Task]] = {}
        try:
            while waiting or pending:
                while waiting and free:
                    worker, task = free.pop(), waiting.pop(0)
                    pending[worker.run.remote(task)] = (worker, task)
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    worker, task = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as err:
                        missing = _cannot_import_agem(err)
                        if missing is not None:
                            raise missing from None
                        with contextlib.suppress(Exception):
                            ray.kill(worker)
                        worker = actor.remote(inline=inline)  # a worker died: replace it
                        actors.append(worker)
                        outcome = Outcome(task, 1, 0.0)  # the run is resumable
                    free.append(worker)
                    yield outcome
        finally:
            for worker in actors:  # its warm worker and run die with it
                with contextlib.suppress(Exception):
                    ray.kill(worker)
            self._finish()
