"""Warm workers: a process that has imported torch and agem and done one tiny run, and
forks a child per run, so that a sweep's runs skip the interpreter's start-up.

The server is `python -m agem.sweeps.forkserver`, started by `WarmWorker` (the side the
engines hold). At start it records the state a fresh interpreter has (torch's global
RNG, default dtype, deterministic flags, threads, signal handlers, cwd, environment,
logging, warnings, `sys.path`), then warms up: one tiny `agem run` on the embedded data
(its output discarded) imports everything a run uses and takes the first optimizer
step. It does so on one thread and on the CPU, so no thread
pool and no CUDA context exists when it forks.

For each request the server forks; the child puts that recorded state back, points its
stdin at /dev/null and its stdout and stderr at the run's log, and runs
`python -m agem ARGV` (the module `agem` as `__main__`), exiting as that command
would. A run changes nothing in the server, so a second run in the same worker starts
from the same state as the first, as a fresh process would. The server reports each
child's exit status (negative: the signal that killed it).

Process safety: the server dies with its parent and each child with the server
(PR_SET_PDEATHSIG, SIGKILL), so a killed sweep leaves no run behind. SIGTERM or SIGINT to
the server is passed on to the run in flight (which records itself as interrupted).

`inline=True` runs each request in the server itself, without a fork: no isolation, for
measuring the floor of a sweep's cost (`scripts/benchmark_sweep.py`) only.

The messages are JSON objects, one per line, over a socket: requests
{"argv", "log"[, "omp_threads"]}; replies {"ready"} (or {"error"}) once warm, then per
request {"pid"} and {"exit"}.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import logging
import os
import random
import runpy
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agem.exiting import exit_by_raising, exit_now
from agem.forked import kill_with_parent

# the seed of torch's global RNG in a new interpreter, in the versions that fix one
_TORCH_DEFAULT_SEED = 67280421310721

#: The tiny run a warm worker does before it serves: every module a run imports, and the
#: first optimizer step.
WARM_UP = (
    "run",
    "--n-experiences",
    "1",
    "--hidden-sizes",
    "4",
    "--patterns-per-experience",
    "20",
    "--lca-test-size",
    "20",
    "--lca-beta",
    "1",
    "--threads",
    "1",
    "--device",
    "cpu",
)

#: Seconds a worker has to start and warm up before the sweep gives up on it.
START_TIMEOUT = 300.0


class WorkerError(ValueError):
    """A warm worker could not start (one line, with what it printed last)."""


def die_with_parent() -> None:  # pragma: no cover - runs in a child process
    """SIGKILL this process when its parent dies (Linux); its own process group, so
    that a terminal's Ctrl-C reaches only the sweep, which stops its runs itself."""
    kill_with_parent()
    os.setpgid(0, 0)


# ---- the server ----------------------------------------------------------------------


def _catchable() -> list[signal.Signals]:
    return [s for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP)]


@dataclass
class _Fresh:
    """What a freshly started interpreter (with torch imported) looks like."""

    rng: Any  # None: torch seeds a new interpreter's global RNG at random
    dtype: Any
    deterministic: bool
    warn_only: bool
    cudnn: tuple[bool, bool, bool]
    matmul_precision: str
    threads: int
    handlers: dict[signal.Signals, Any]
    cwd: str
    environ: dict[str, str]
    path: list[str]
    root_handlers: list[logging.Handler]
    root_level: int
    warning_filters: list[Any]

    @classmethod
    def capture(cls) -> _Fresh:
        import torch

        cudnn = torch.backends.cudnn
        handlers = {}
        for sig in _catchable():
            with contextlib.suppress(OSError, ValueError):
                handler = signal.getsignal(sig)
                if handler is not None:
                    handlers[sig] = handler
        return cls(
            rng=torch.get_rng_state() if torch.initial_seed() == _TORCH_DEFAULT_SEED else None,
            dtype=torch.get_default_dtype(),
            deterministic=torch.are_deterministic_algorithms_enabled(),
            warn_only=torch.is_deterministic_algorithms_warn_only_enabled(),
            cudnn=(cudnn.deterministic, cudnn.benchmark, cudnn.enabled),
            matmul_precision=torch.get_float32_matmul_precision(),
            threads=torch.get_num_threads(),
            handlers=handlers,
            cwd=os.getcwd(),
            environ=dict(os.environ),
            path=list(sys.path),
            root_handlers=list(logging.root.handlers),
            root_level=logging.root.level,
            warning_filters=list(warnings.filters),
        )

    def restore(self, *, omp_threads: int | None) -> None:
        """Put this state back (in a child about to run, or before an inline run)."""
        import torch

        for sig, handler in self.handlers.items():
            with contextlib.suppress(OSError, ValueError):
                signal.signal(sig, handler)
        os.chdir(self.cwd)
        os.environ.clear()
        os.environ.update(self.environ)
        if omp_threads is not None:
            os.environ["OMP_NUM_THREADS"] = str(omp_threads)
        sys.path[:] = self.path
        logging.root.handlers[:] = self.root_handlers
        logging.root.setLevel(self.root_level)
        logging.disable(logging.NOTSET)
        warnings.resetwarnings()  # also forgets the warnings already shown once
        warnings.filters[:] = self.warning_filters  # type: ignore[index]
        if self.rng is None:
            torch.seed()  # a fresh interpreter's seed: at random
        else:
            torch.set_rng_state(self.rng)
        torch.set_default_dtype(self.dtype)
        deterministic = (self.deterministic, self.warn_only)
        if deterministic != (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        ):  # only when changed: the setter imports torch._dynamo (about 1.5 s per run)
            torch.use_deterministic_algorithms(self.deterministic, warn_only=self.warn_only)
        cudnn = torch.backends.cudnn
        cudnn.deterministic, cudnn.benchmark, cudnn.enabled = self.cudnn
        torch.set_float32_matmul_precision(self.matmul_precision)
        torch.set_num_threads(omp_threads or self.threads)
        random.seed()  # a fresh interpreter seeds from the system's entropy
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            numpy.random.seed()


def _os_threads() -> int:
    """This process's threads (the kernel's count; 1 when it cannot tell)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # pragma: no cover - not Linux
        return 1


@contextlib.contextmanager
def _output_to(path: str | None) -> Any:
    """Point file descriptors 0, 1, 2 at /dev/null (0) and `path` (1, 2; /dev/null when
    None) for the duration, flushing Python's streams on both sides."""
    from agem.atomic import open_append

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    try:
        with open(os.devnull, "rb") as nothing:
            os.dup2(nothing.fileno(), 0)
        with open_append(Path(path)) if path else open(os.devnull, "wb") as out:
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in enumerate(saved):
            os.dup2(copy, fd)
            os.close(copy)


def _run_module(module: str, argv: Sequence[str]) -> int:
    """`python -m MODULE ARGV` in this process; its exit status."""
    sys.argv = [module, *argv]
    try:
        with exit_by_raising():  # this process ends when its owner says so
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    except BaseException:  # what the interpreter would print, then exit status 1
        traceback.print_exc()
        return 1
    return 0


def _warm_up(module: str, argv: Sequence[str]) -> str | None:
    """Do the warm-up run on one thread; None, or what went wrong (one line)."""
    import torch

    torch.set_num_threads(1)  # no OpenMP pool may exist when the server forks
    if not argv:
        return None
    with tempfile.TemporaryDirectory(prefix="agem-warm-") as folder:
        log = str(Path(folder) / "warm-up.log")
        with _output_to(log):
            code = _run_module(module, [*argv, "--out", str(Path(folder) / "run")])
        if code != 0:
            lines = Path(log).read_text(errors="replace").strip().splitlines()
            return f"the warm-up run exited {code}: {lines[-1] if lines else 'no output'}"
    torch.set_num_threads(1)
    return None


class _Server:
    """The loop: read a request, fork, report the child's pid and exit status."""

    def __init__(self, channel: socket.socket, module: str, *, inline: bool) -> None:
        self.channel = channel
        self.module = module
        self.inline = inline
        self.child: int | None = None

    def send(self, message: dict[str, Any]) -> None:
        self.channel.sendall(json.dumps(message).encode() + b"\n")

    def _forward(self, signum: int, frame: Any) -> None:
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, signum)
        else:
            raise SystemExit(128 + signum)

    def serve(self, fresh: _Fresh) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._forward)
        reader = self.channel.makefile("rb")
        for line in reader:
            request = json.loads(line)
            argv, log = request["argv"], request["log"]
            omp_threads = request.get("omp_threads")
            if self.inline:
                self.send({"pid": os.getpid()})
                with _output_to(log):
                    fresh.restore(omp_threads=omp_threads)
                    code = _run_module(self.module, argv)
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, self._forward)
                self.send({"exit": code})
                continue
            blocked = {signal.SIGTERM, signal.SIGINT}
            signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
            server = os.getpid()
            pid = os.fork()
            if pid == 0:  # the run: it never comes back into this loop
                reader.close()
                self.channel.close()
                # no teardown: it would touch every object shared with the server,
                # copying its pages (about 0.3 s per run)
                exit_now(_become_run(server, fresh, self.module, argv, log, omp_threads))
            self.child = pid
            signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
            self.send({"pid": pid})
            _, status = os.waitpid(pid, 0)
            self.child = None
            self.send({"exit": os.waitstatus_to_exitcode(status)})
        return 0


def _become_run(
    server: int, fresh: _Fresh, module: str, argv: Sequence[str], log: str, omp: int | None
) -> int:  # pragma: no cover - runs in the forked child
    """In the forked child: die with the server, look like a fresh interpreter, write to
    the log, run `python -m MODULE ARGV`; its exit status."""
    kill_with_parent()
    if os.getppid() != server:  # the server died before the line above
        os._exit(128 + signal.SIGKILL)
    fresh.restore(omp_threads=omp)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    from agem.atomic import open_append

    with open(os.devnull, "rb") as nothing:
        os.dup2(nothing.fileno(), 0)
    with open_append(Path(log)) as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    return _run_module(module, argv)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m agem.sweeps.forkserver --fd N [--module M] [--inline] [WARM-UP ARGV]`."""
    parser = argparse.ArgumentParser(prog="python -m agem.sweeps.forkserver")
    parser.add_argument("--fd", type=int, required=True, help="the socket to the engine")
    parser.add_argument("--module", default="agem", help="the module each run runs")
    parser.add_argument("--inline", action="store_true", help="no fork (no isolation)")
    parser.add_argument("warm_up", nargs=argparse.REMAINDER, help="the warm-up's argv")
    args = parser.parse_args(argv)
    import torch  # noqa: F401  - the fresh state includes torch's

    fresh = _Fresh.capture()
    imported = _os_threads()  # e.g. OpenBLAS's pool, which numpy starts (it survives forks)
    channel = socket.socket(fileno=args.fd)
    warm_up = args.warm_up[1:] if args.warm_up[:1] == ["--"] else args.warm_up
    error = _warm_up(args.module, warm_up)
    if error is not None:
        channel.sendall(json.dumps({"error": error}).encode() + b"\n")
        return 1
    gc.collect()
    gc.freeze()  # the children's collections then leave the server's objects (and pages) alone
    ready = {"ready": True, "threads": _os_threads(), "threads_at_import": imported}
    channel.sendall(json.dumps(ready).encode() + b"\n")
    return _Server(channel, args.module, inline=args.inline).serve(fresh)


# ---- the engine's side -----------------------------------------------------------------


class WarmWorker:
    """One fork server and the run it has in flight (at most one)."""

    def __init__(
        self,
        *,
        module: str = "agem",
        warm_up: Sequence[str] = WARM_UP,
        inline: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.module = module
        self.warm_up = tuple(warm_up)
        self.inline = inline
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.channel: socket.socket | None = None
        self._reader: io.BufferedReader | None = None
        self.ready = False
        #: the server's OS threads after its imports, and when it was ready to fork
        self.threads: tuple[int, int] | None = None
        self.pid: int | None = None  # of the run in flight
        self.busy = False

    def start(self) -> None:
        """Start the server (it warms up on its own; `wait_ready` waits for that)."""
        ours, theirs = socket.socketpair()
        command = [sys.executable, "-m", "agem.sweeps.forkserver", "--fd", str(theirs.fileno())]
        command += [*(["--inline"] if self.inline else []), "--module", self.module]
        command += ["--", *self.warm_up]
        with theirs:
            self.process = subprocess.Popen(
                command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                preexec_fn=die_with_parent,
            )
        self.channel = ours
        self._reader = ours.makefile("rb")
        self.ready = False
        self.busy = False
        self.pid = None

    def fileno(self) -> int:
        assert self.channel is not None
        return self.channel.fileno()

    def _message(self) -> dict[str, Any] | None:
        """The next message (blocking); None when the server is gone."""
        assert self._reader is not None
        line = self._reader.readline()
        if not line:
            return None
        message: dict[str, Any] = json.loads(line)
        if "error" in message:
            raise WorkerError(f"a warm worker could not start: {message['error']}")
        if "ready" in message:
            self.ready = True
            self.threads = (int(message["threads_at_import"]), int(message["threads"]))
        return message

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Block until the server has warmed up; `WorkerError` if it cannot."""
        deadline = time.monotonic() + timeout
        while not self.ready:
            if not select.select([self], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise WorkerError(f"a warm worker did not start within {timeout:g} s")
            if self._message() is None:
                code = self.process.wait() if self.process else None
                raise WorkerError(f"a warm worker exited (status {code}) before it was ready")

    def submit(self, *, argv: Sequence[str], log: Path, omp_threads: int | None) -> None:
        """Send one run (its log already holds the command line)."""
        if self.process is None or self.process.poll() is not None:
            self.close(grace=0.0)
            self.start()
        request = {"argv": list(argv), "log": str(log), "omp_threads": omp_threads}
        assert self.channel is not None
        self.channel.sendall(json.dumps(request).encode() + b"\n")
        self.busy = True

    def poll(self) -> int | None:
        """Read what the server says (call when `fileno` is readable); the run's exit status
        once it has ended, else None. A server that died takes its run with it: the
        status is then the server's (e.g. -9 for SIGKILL)."""
        message = self._message()
        if message is None:
            assert self.process is not None
            code = self.process.wait()
            self.close()
            if not self.busy:
                return None
            self.busy = False
            return code if code != 0 else 1
        if "pid" in message:
            self.pid = int(message["pid"])
        if "exit" in message:
            self.busy = False
            self.pid = None
            return int(message["exit"])
        return None

    def wait(self) -> int:
        """Block until the run in flight ends; its exit status."""
        while True:
            code = self.poll()
            if code is not None or not self.busy:
                return code if code is not None else 1

    def interrupt(self) -> None:
        """SIGTERM the server, which passes it on to its run."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    def close(self, grace: float = 5.0) -> None:
        """Stop the server: end of input, then SIGKILL after `grace` seconds (its run, if
        any, dies with it)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def stop_workers(workers: Sequence[WarmWorker], grace: float = 30.0) -> None:
    """SIGTERM the runs in flight (each records itself as interrupted), wait up to `grace`
    seconds for them, then close every worker."""
    busy = [w for w in workers if w.busy and w.channel is not None]
    for worker in busy:
        worker.interrupt()
    deadline = time.monotonic() + grace
    while busy and time.monotonic() < deadline:
        readable = select.select(busy, [], [], max(0.0, deadline - time.monotonic()))[0]
        for worker in readable:
            with contextlib.suppress(WorkerError, ValueError):
                worker.poll()
        busy = [w for w in busy if w.busy and w.channel is not None]
    for worker in workers:  # end of input first: the idle ones exit together
        if worker not in busy and worker.channel is not None:
            worker.channel.shutdown(socket.SHUT_WR)
    for worker in workers:
        worker.close(grace=0.0 if worker in busy else 5.0)


if __name__ == "__main__":
    sys.exit(main())
