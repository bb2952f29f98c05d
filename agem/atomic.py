"""Atomic file writes: a temporary file beside the target, fsync, then a rename.

A reader, or a process killed half-way, sees either the old file or the new one, never a
half-written one; on any error the temporary file is removed. Every file a run or a sweep
writes goes through here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

TMP_SUFFIX = ".tmp"


def write_atomic(
    path: str | Path,
    write: Callable[[IO[bytes]], object],
    *,
    before_rename: Callable[[], None] | None = None,
) -> Path:
    """Write `path` through `write(binary_file)` atomically; return the path.

    `before_rename` runs after the data is on disk and before the rename (tests use it
    to stop a process at the worst moment).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def write_bytes_atomic(path: str | Path, data: bytes | memoryview) -> Path:
    """Write `data` to `path` so that `path` holds either the old or the new content."""
    return write_atomic(path, lambda handle: handle.write(data))


def write_text_atomic(path: str | Path, text: str) -> Path:
    """`write_bytes_atomic` for UTF-8 text."""
    return write_bytes_atomic(path, text.encode("utf-8"))
