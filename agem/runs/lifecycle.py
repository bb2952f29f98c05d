"""The life of a run folder's training, shared by a single run and a fleet: signals, and how
a run ends.

SIGINT/SIGTERM end the run with status "interrupted" (`RunInterrupted`); a NaN or
infinite loss with status "diverged" (`TrainingDiverged`); an error of the environment
(disk full, permission denied) with status "failed" and a `RunEnvironmentError`.
Checkpoints and results are written inside a critical section that a signal does not
cut short (it takes effect right after). `drive` runs an `Execution` (a `SingleRun` or a
`FleetRun`) through these rules.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from agem.runs.divergence import TrainingDiverged

_SIGNALS = (signal.SIGINT, signal.SIGTERM)

__all__ = [
    "Execution",
    "RunEnvironmentError",
    "RunInterrupted",
    "Signals",
    "TrainingDiverged",
    "drive",
    "oserror_line",
]


class RunInterrupted(Exception):
    """SIGINT or SIGTERM stopped the run; its folder says "interrupted"."""

    def __init__(self, signum: int, out: Path | None = None) -> None:
        self.signum = signum
        self.out = out
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class RunEnvironmentError(ValueError):
    """The machine refused something the run needs (disk full, permission denied)."""


class Signals:
    """SIGINT/SIGTERM raise `RunInterrupted`, except inside `critical()` (then after it).

    A signal is also remembered when it raises: code that caught the exception and went
    on (a library's broad `except Exception`) cannot lose it, since the end of the next
    critical section, or `raise_pending`, raises it again.
    """

    def __init__(self) -> None:
        self.pending: int | None = None
        self.depth = 0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: Any) -> None:
        self.pending = self.pending or signum
        if not self.depth:
            raise RunInterrupted(signum)

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        self.raise_pending()

    def raise_pending(self) -> None:
        """Raise `RunInterrupted` for a signal received outside `hold()` and not acted
        on yet (inside a critical section, or swallowed by the code it interrupted)."""
        if not self.depth and self.pending:
            signum, self.pending = self.pending, None
            raise RunInterrupted(signum)

    def hold(self) -> None:
        """From now on, signals are only remembered (the run is ending anyway)."""
        self.depth += 1


def oserror_line(err: OSError) -> str:
    """One line for an error of the environment: what failed, and on which file."""
    where = f": {err.filename}" if err.filename else ""
    return f"{err.strerror or err}{where}"


class Execution(Protocol):
    """What `drive` drives: a `SingleRun` or a `FleetRun`."""

    def train(self, signals: Signals) -> dict[str, Any]: ...

    def end(self, status: str, **extra: Any) -> None: ...


def drive(execution: Execution, signals: Signals, prepare: Callable[[], None]) -> dict[str, Any]:
    """Prepare the folder and train; record how the run ended if it ends early."""
    started = False
    try:
        with signals.critical():
            prepare()
        started = True
        return execution.train(signals)
    except RunInterrupted:
        signals.hold()
        if started:
            execution.end("interrupted")
        raise
    except TrainingDiverged as err:
        signals.hold()
        where = {"experience": err.experience, "iteration": err.iteration}
        execution.end("diverged", diverged=where)
        raise
    except OSError as err:
        signals.hold()
        if started:
            execution.end("failed", error=oserror_line(err))
        raise RunEnvironmentError(oserror_line(err)) from None
    except MemoryError:
        signals.hold()
        if started:
            execution.end("failed", error="out of memory")
        raise RunEnvironmentError("out of memory (try smaller sizes)") from None
    except BaseException as err:
        signals.hold()
        if started:
            execution.end("failed", error=f"{type(err).__name__}: {err}")
        raise
