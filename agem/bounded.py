"""Reading files that a user or another process may have made hostile: bounded in size
and nesting, and only regular files (a FIFO or `/dev/zero` would never end).

Every small file agem reads back (config.json, results.json, a sweep spec) goes through
here, so garbage is one `ValueError` line, never a hang or a traceback.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

#: The largest config file or sweep spec read (they are a few kilobytes).
MAX_SMALL_FILE = 16 * 2**20
#: The largest results.json read (a long run's evaluations and LCA curves stay far below).
MAX_RESULTS_FILE = 512 * 2**20


def read_bytes(path: str | Path, *, limit: int = MAX_SMALL_FILE) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them.

    Raises `ValueError` (one line naming the file) for a file that is not regular or is
    larger than `limit`; an `OSError` (missing, unreadable) passes through.
    """
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path} is larger than {limit} bytes: not read")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(min(info.st_size, limit) + 1)  # a file growing stays bounded
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"{path} is larger than {limit} bytes: not read")
    return data


def read_text(path: str | Path, *, limit: int = MAX_SMALL_FILE) -> str:
    """`read_bytes` decoded as UTF-8 (`ValueError` for bytes that are not UTF-8)."""
    try:
        return read_bytes(path, limit=limit).decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start})") from None


def parse_json(text: str | bytes, *, source: str) -> Any:
    """`json.loads(text)`; a syntax error or a nesting too deep is a one-line ValueError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{source} is not valid JSON: {err.msg} at line {err.lineno}") from None
    except RecursionError:
        raise ValueError(f"{source} is not usable JSON: nested too deeply") from None
    except UnicodeDecodeError:
        raise ValueError(f"{source} is not valid JSON: not UTF-8 text") from None


def load_json(path: str | Path, *, limit: int = MAX_SMALL_FILE) -> Any:
    """The JSON value in the regular file `path`, bounded as `read_bytes` and
    `parse_json` say."""
    return parse_json(read_bytes(path, limit=limit), source=str(path))


def describe(err: BaseException) -> str:
    """One line for a reading error: an OS error as its reason, anything else its message."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return " ".join(str(err).split()) or type(err).__name__
