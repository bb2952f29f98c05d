"""Ending a process without the interpreter's teardown.

A normal exit tears down every module and object the process holds; with torch imported
that costs a large part of a second (measured in BENCHMARKS.md), more than the rest of a
short run's overhead. `exit_now` does what a program can observe of a normal exit (its
non-daemon threads joined, `atexit` functions run: logging, W&B, Ray, temporary
directories; standard streams flushed) and then ends the process at once. Files a run
writes are closed (and written atomically) before this; nothing is left to a finalizer.

A host that runs a command's entry point inside its own process (the sweep's fork server:
its warm-up run, and each forked run until it returns) wraps the call in
`exit_by_raising()`, so that the entry point's `exit_now` raises `SystemExit` as
`sys.exit` would, and the host ends the process itself.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import NoReturn

#: How many `exit_by_raising` blocks are open (in this process).
_RAISING = {"depth": 0}


@contextlib.contextmanager
def exit_by_raising() -> Iterator[None]:
    """Within this block, `exit_now(code)` raises `SystemExit(code)` instead of exiting."""
    _RAISING["depth"] += 1
    try:
        yield
    finally:
        _RAISING["depth"] -= 1


def exit_now(code: int) -> NoReturn:
    """Exit with status `code` as described above, skipping the teardown (or raise
    `SystemExit(code)` inside `exit_by_raising`)."""
    if _RAISING["depth"]:
        raise SystemExit(code)
    try:
        shutdown = getattr(threading, "_shutdown", None)  # what the interpreter calls first
        if shutdown is not None:
            shutdown()
        else:  # pragma: no cover - every CPython this package supports has it
            for thread in threading.enumerate():
                if thread is not threading.main_thread() and not thread.daemon:
                    thread.join()
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                stream.flush()
    finally:
        os._exit(code)
