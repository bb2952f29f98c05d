"""Atomic file writes: a temporary file beside the target, fsync, then a rename.

A reader, or a process killed half-way, sees either the old file or the new one, never a
half-written one; on any error the temporary file is removed. Every file a run or a sweep
writes goes through here.

No write follows a symbolic link: a target that is one is refused (`UnsafeFileError`),
the temporary file is created with `O_EXCL | O_NOFOLLOW` (so a link planted under its
name is never written through), and `open_append` opens a log with `O_NOFOLLOW` and
refuses anything but a regular file. A planted link can thus never make agem write a
file outside the folder it was given.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO

TMP_SUFFIX = ".tmp"
PAUSE_VARIABLE = "AGEM_TEST_PAUSE_BEFORE_RENAME"


class UnsafeFileError(OSError):
    """A file to be written is a symbolic link or not a regular file: refused."""

    def __init__(self, path: str | Path, what: str = "is a symbolic link") -> None:
        super().__init__(errno.ELOOP, f"refusing to write a file that {what}", str(path))


def _test_pause(name: str) -> Callable[[], None] | None:
    """Tests only: `AGEM_TEST_PAUSE_BEFORE_RENAME=<name>:<seconds>` stops every atomic
    write of a file called `name` between its fsync and its rename, so that a signal or
    a kill can land there."""
    pause = os.environ.get(PAUSE_VARIABLE)
    if not pause or name != pause.split(":")[0]:
        return None
    seconds = float(pause.split(":")[1])

    def sleep() -> None:
        import time

        time.sleep(seconds)

    return sleep


def refuse_link(path: Path) -> None:
    """Raise `UnsafeFileError` if `path` is a symbolic link or exists as a non-regular
    file (a FIFO, a device, a folder)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise UnsafeFileError(path)
    if not stat.S_ISREG(mode):
        raise UnsafeFileError(path, "is not a regular file")


def _create_exclusive(tmp: Path) -> int:
    """A new temporary file, never through a link (a stale one of ours is replaced)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(tmp, flags, 0o644)
    except FileExistsError:
        tmp.unlink()  # a leftover (or a planted link): the name itself is removed
        return os.open(tmp, flags, 0o644)


def write_atomic(
    path: str | Path,
    write: Callable[[IO[bytes]], object],
    *,
    before_rename: Callable[[], None] | None = None,
) -> Path:
    """Write `path` through `write(binary_file)` atomically; return the path.

    `before_rename` runs after the data is on disk and before the rename (tests use it
    to stop a process at the worst moment); without one, the test pause of
    `AGEM_TEST_PAUSE_BEFORE_RENAME` applies. Raises `UnsafeFileError` if `path` is a
    symbolic link or not a regular file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_link(path)
    if before_rename is None:
        before_rename = _test_pause(path.name)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        with os.fdopen(_create_exclusive(tmp), "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if before_rename is not None:
            before_rename()
        refuse_link(path)  # planted while we wrote: still never replaced by us
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


def open_append(path: str | Path, *, truncate: bool = False, regular: bool = True) -> IO[bytes]:
    """`path` opened to append bytes (created if missing; emptied first with `truncate`),
    never through a symbolic link and, with `regular`, only if it is a regular file
    (`regular=False` also takes a device such as /dev/null)."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    flags |= os.O_TRUNC if truncate else os.O_APPEND
    if regular:
        refuse_link(path)  # before O_TRUNC could touch a FIFO or device
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UnsafeFileError(path) from None
        raise
    if regular and not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeFileError(path, "is not a regular file")
    return os.fdopen(fd, "ab")
