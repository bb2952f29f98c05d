"""Ending a process without the interpreter's teardown.

A normal exit tears down every module and object the process holds; with torch imported
that costs a large part of a second (measured in BENCHMARKS.md), more than the rest of a
short run's overhead. `exit_now` does what a program can observe of a normal exit (its
non-daemon threads joined, `atexit` functions run: logging, W&B, Ray, temporary
directories; standard streams flushed) and then ends the process at once. Files a run
writes are closed (and written atomically) before this; nothing is left to a finalizer.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """Exit with status `code` as described above, skipping the teardown."""
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
