"""A few independent jobs at once, in forked children: for CPU-bound work that holds the
GIL, such as drawing figures, where threads would not run in parallel.

`run_forked` runs the first share of the jobs in this process and each other share in a
child forked from it, so the children start with everything this process has imported
(no second import of matplotlib) and cost about a millisecond each. A child only runs
its jobs and sends their results back through a pipe; it never returns into the caller's
code, skips the interpreter's teardown and is killed if this process dies. A job that
fails in a child (or whose child is killed) is run again here, so its exception reaches
the caller exactly as if the jobs had run one after the other. Where fork is not safe to
use (not Linux) or only one CPU is available, the jobs run here, in order.

`Standby` forks such a child early, to prepare (import what the jobs need) on another CPU
while this process works, and runs the jobs from there when they are known.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def kill_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux; elsewhere
    nothing). Called first thing in a forked or spawned child."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity where the platform tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def can_fork() -> bool:
    """Whether `run_forked` forks here: Linux (fork is unsafe with macOS' system
    libraries, absent on Windows)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def _shares(count: int, processes: int) -> list[list[int]]:
    """Job indices dealt round-robin into `processes` shares (none empty)."""
    shares = [list(range(start, count, processes)) for start in range(processes)]
    return [share for share in shares if share]


def _become_child(parent: int) -> bool:
    """First steps of a forked child: die with `parent`, leave signals to it. False when
    the parent is gone already."""
    kill_with_parent()
    if os.getppid() != parent:  # the parent died before the line above
        return False
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)  # the parent decides what a signal means
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _child(
    jobs: Sequence[Callable[[], Any]], share: Sequence[int], write_fd: int, parent: int
) -> None:
    """The body of a forked child: run its jobs, send their results, exit at once."""
    code = 1
    try:  # pragma: no cover - runs in the forked child (its coverage is not collected)
        if not _become_child(parent):
            return
        _write_all(write_fd, pickle.dumps({index: jobs[index]() for index in share}))
        code = 0
    finally:
        os._exit(code)  # no teardown, no atexit, no unflushed parent buffers written twice


def run_forked(jobs: Sequence[Callable[[], T]], *, processes: int | None = None) -> list[T]:
    """Run `jobs` (no arguments each) and return their results in order, using up to
    `processes` processes: this one and forked children. By default each job gets its
    own process when more than one CPU is available (a few short jobs of unequal length
    finish sooner that way than dealt out to one process per CPU), and all run here
    on one CPU.

    Results travel back pickled, so they must be picklable. Jobs must not depend on each
    other or on running in this process (a child's changes to memory are not seen here).
    """
    if processes is not None and processes < 1:
        raise ValueError(f"processes must be at least 1, got {processes}")
    if processes is None:
        processes = len(jobs) if available_cpus() > 1 else 1
    shares = _shares(len(jobs), min(processes, len(jobs)) if can_fork() else 1)
    if len(shares) <= 1:
        return [job() for job in jobs]
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    children: list[tuple[int, int, list[int]]] = []  # pid, read end, share
    results: dict[int, Any] = {}
    try:
        for share in shares[1:]:
            read_fd, write_fd = os.pipe()
            with warnings.catch_warnings():
                # Python 3.12+ warns about forking with threads alive; the child only runs
                # its jobs and never takes a lock another thread may hold here
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:  # pragma: no cover - the forked child
                os.close(read_fd)
                _child(jobs, share, write_fd, parent)
            os.close(write_fd)
            children.append((pid, read_fd, share))
        results.update({index: jobs[index]() for index in shares[0]})
        while children:
            pid, read_fd, share = children[0]
            with os.fdopen(read_fd, "rb", closefd=False) as pipe:
                data = pipe.read()  # until the child exits
            _, status = os.waitpid(pid, 0)
            children.pop(0)
            os.close(read_fd)
            if os.waitstatus_to_exitcode(status) == 0 and data:
                results.update(pickle.loads(data))
            else:  # it failed or was killed: run its jobs here, raising what they raise
                results.update({index: jobs[index]() for index in share})
    finally:
        for pid, read_fd, _ in children:  # interrupted: no child outlives the call
            with contextlib.suppress(OSError):
                os.close(read_fd)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    return [results[index] for index in range(len(jobs))]


class Standby:
    """A child forked now that runs `prepare` (such as importing a heavy module) on
    another CPU while this process goes on, then waits for one call of `run`, whose jobs
    it runs with `run_forked` from its prepared state. Work this process would do at its
    end (importing matplotlib before drawing a run's figures) so overlaps with its own.

    Nothing is forked where `run_forked` would not fork or where only one CPU is
    available (there, `run` prepares here first), or when `prepare` is None (nothing to
    prepare). `run` falls back to this process whenever the child cannot serve it (it
    died, was killed, or the jobs cannot be pickled), so the results, and any exception
    the jobs raise, are those of running them here. The child dies with this process;
    `close` (or leaving the `with` block) ends it when `run` was never called.
    """

    def __init__(self, prepare: Callable[[], object] | None) -> None:
        self._prepare = prepare
        self._pid: int | None = None
        self._send = self._receive = -1
        if prepare is None or not can_fork() or available_cpus() < 2:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        request_read, self._send = os.pipe()
        self._receive, reply_write = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # see run_forked
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the forked child
            os.close(self._send)
            os.close(self._receive)
            _standby_child(prepare, request_read, reply_write, parent)
        os.close(request_read)
        os.close(reply_write)
        self._pid = pid

    def run(self, jobs: Sequence[Callable[[], T]], *, processes: int | None = None) -> list[T]:
        """`run_forked(jobs, processes=processes)`, from the prepared child if it is there."""
        reply = self._serve(self._pid, jobs, processes) if self._pid is not None else None
        if reply is not None:
            return reply
        if self._prepare is not None:
            self._prepare()
            self._prepare = None
        return run_forked(jobs, processes=processes)

    def _serve(
        self, pid: int, jobs: Sequence[Callable[[], T]], processes: int | None
    ) -> list[T] | None:
        """Child `pid`'s results for `jobs`, or None when it could not give them."""
        try:
            try:
                request = pickle.dumps((list(jobs), processes))
            except Exception:  # jobs that cannot travel run here
                return None
            try:
                _write_all(self._send, request)
                os.close(self._send)
                self._send = -1
            except OSError:  # the child is gone
                return None
            with os.fdopen(self._receive, "rb", closefd=False) as pipe:
                data = pipe.read()  # until the child exits
            self._pid = None
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0 or not data:
                return None
            self._prepare = None  # the child prepared and ran them
            results: list[T] = pickle.loads(data)
            return results
        finally:
            self.close()

    def close(self) -> None:
        """End the child (if still there) and release its pipes; idempotent."""
        for fd in (self._send, self._receive):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._send = self._receive = -1
        pid, self._pid = self._pid, None
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)

    def __enter__(self) -> Standby:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _standby_child(
    prepare: Callable[[], object], request_fd: int, reply_fd: int, parent: int
) -> None:
    """The body of a `Standby` child: prepare, wait for its jobs, run them, reply, exit."""
    code = 1
    try:  # pragma: no cover - runs in the forked child (its coverage is not collected)
        if not _become_child(parent):
            return
        prepare()
        with os.fdopen(request_fd, "rb") as pipe:
            request = pipe.read()  # until the parent sends its jobs or closes
        if not request:  # closed without a call of run
            code = 0
            return
        jobs, processes = pickle.loads(request)
        _write_all(reply_fd, pickle.dumps(run_forked(jobs, processes=processes)))
        code = 0
    finally:
        os._exit(code)
