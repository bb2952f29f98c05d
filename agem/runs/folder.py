"""`RunFolder`: one run folder, written by one run only.

- A new run refuses a folder that exists and is not empty, unless told to overwrite it
  (then everything in it is removed first) or to resume it.
- The live run holds an exclusive lock (`fcntl.flock` on `.lock` in the folder); the
  kernel drops it when the process ends, however it ends, so a folder left by SIGKILL is
  not locked. A second run on a locked folder is refused.
- No file in the folder is written through a symbolic link: a link among its entries
  (the lock included) is refused in one line before anything is written.
- Every file is written atomically: a temporary file beside it (`.<name>.<pid>.tmp`),
  flushed and fsynced, then renamed over the old one; on any error the temporary file is
  removed. Temporary files left by a killed process are removed when the folder is
  resumed or overwritten.
- `results.json` always carries "status": running, complete, interrupted, failed or
  diverged.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import shutil
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from agem.atomic import TMP_SUFFIX, write_atomic
from agem.bounded import MAX_RESULTS_FILE, load_json
from agem.reporting.compare import run_status

STATUSES = ("running", "complete", "interrupted", "failed", "diverged")
LOCK = ".lock"


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (reported in one line, exit status 2)."""


def lock_file(path: Path, *, user: str) -> int:
    """An open descriptor of the lock file `path`, exclusively locked and holding our pid.

    The file is never opened through a symbolic link and must be a regular file. A live
    holder is refused with one line naming it (`user` says what holds such a lock, e.g.
    "a live run"); the kernel drops the lock when its holder ends, however it ends.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except IsADirectoryError:
        raise RunFolderError(f"{path} is a folder; it must be a lock file") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise RunFolderError(
                f"{path} is a symbolic link; refusing to use it as a lock file (remove it)"
            ) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RunFolderError(f"{path} is not a regular file; it must be a lock file")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise RunFolderError(
            f"{path.parent} is in use by {user} (process {holder}); "
            "wait for it to end or stop it first"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def refuse_links(folder: Path) -> None:
    """Refuse (RunFolderError) a folder with a symbolic link among its entries: a run
    writes only its own files there, and a link would send a write elsewhere."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.is_symlink():
            raise RunFolderError(
                f"{entry} is a symbolic link; a run folder holds only its own files "
                "(remove it or use another folder)"
            )


def plain(value: Any) -> Any:
    """`value` with NaN and infinities as None, so that it is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RunFolder:
    """The run folder at `path` (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None

    # ---- opening ---------------------------------------------------------------
    def check_new(self, *, overwrite: bool) -> None:
        """Refuse (without changing anything) a path that a new run may not use."""
        path = self.path
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"--out {path} exists and is not a folder")
        if path.is_dir() and (path / LOCK).is_symlink():
            raise RunFolderError(
                f"{path / LOCK} is a symbolic link; refusing to use it as the run's lock "
                "(remove it)"
            )
        if path.is_dir() and not overwrite and self._entries():
            raise RunFolderError(
                f"--out {path} exists and is not empty; give --overwrite to clear it "
                f"or --resume {path} to continue the run in it"
            )

    def create(self, *, overwrite: bool) -> None:
        """Make the folder, lock it, and clear it when `overwrite` (else it must be empty)."""
        self.check_new(overwrite=overwrite)
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock()
        if overwrite:
            self.clear()
        else:
            self.check_new(overwrite=False)  # again, now that we hold the lock

    def open_existing(self) -> None:
        """Lock an existing run folder (to resume it) and remove stale temporary files."""
        if not self.path.is_dir():
            raise RunFolderError(f"--resume {self.path}: no such run folder")
        refuse_links(self.path)
        self.lock()
        for entry in self.path.iterdir():
            if entry.name.startswith(".") and entry.name.endswith(TMP_SUFFIX):
                entry.unlink(missing_ok=True)

    def _entries(self) -> list[Path]:
        return [p for p in self.path.iterdir() if p.name != LOCK]

    def clear(self, *, keep: tuple[str, ...] = ()) -> None:
        """Remove everything in the folder except the lock and the names in `keep`."""
        for entry in self._entries():
            if entry.name in keep:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    # ---- the lock --------------------------------------------------------------
    def lock(self) -> None:
        """Take the folder's exclusive lock, or refuse if a live process holds it."""
        if self._lock_fd is not None:
            return
        self._lock_fd = lock_file(self.path / LOCK, user="a live run")

    @property
    def locked(self) -> bool:
        """Whether this object holds the folder's lock."""
        return self._lock_fd is not None

    def unlock(self) -> None:
        """Release the lock (the lock file stays: removing it would race)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ---- atomic writes -----------------------------------------------------------
    def write_with(self, name: str, write: Callable[[IO[bytes]], object]) -> Path:
        """Write file `name` atomically through `write(binary_file)`; return its path."""
        return write_atomic(self.path / name, write)

    def write_bytes(self, name: str, data: bytes | memoryview) -> Path:
        """Write `data` to file `name` atomically."""

        def write(f: IO[bytes]) -> None:
            f.write(data)

        return self.write_with(name, write)

    def write_json(self, name: str, data: Mapping[str, Any]) -> Path:
        """Write `data` as strict JSON (NaN as null) to file `name` atomically."""
        text = json.dumps(plain(data), indent=2, allow_nan=False) + "\n"
        return self.write_bytes(name, text.encode())

    def read_json(self, name: str) -> dict[str, Any] | None:
        """File `name` as JSON, or None if it is missing or not a JSON object (a folder or
        a device in its place is a RunFolderError)."""
        path = self.path / name
        if path.exists() and not path.is_file():
            raise RunFolderError(f"{path} is not a regular file; a run folder holds its own files")
        try:
            data = load_json(path, limit=MAX_RESULTS_FILE)
        except FileNotFoundError:
            return None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def sync(self) -> None:
        """Make the renames so far durable (fsync the folder)."""
        _fsync_dir(self.path)

    # ---- status ----------------------------------------------------------------
    def write_results(self, results: Mapping[str, Any], status: str) -> dict[str, Any]:
        """Write results.json with `status` first; return what was written."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        data = {"status": status, **{k: v for k, v in results.items() if k != "status"}}
        self.write_json("results.json", data)
        return data

    def status(self) -> str | None:
        """The status of results.json as `agem.reporting.compare.run_status` reads it (the
        one rule for every reader of run folders); None when there is no results.json."""
        results = self.read_json("results.json")
        return None if results is None else run_status(results)
