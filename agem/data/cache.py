"""Decoded datasets kept as `.npy` files, so that a dataset is decoded once per machine.

Decoding Fashion-MNIST's gzip IDX files or CIFAR's pickled batches costs far more than
mapping the decoded arrays back into memory. `cached(key, sources, decode)` returns the
arrays of a cache that matches `sources`, else calls `decode()` and stores its arrays.

Where the cache lives: in the folder `$AGEM_CACHE` when that variable is set; else in
a hidden folder `.agem-decoded/` beside the source files when they are in a data folder
of the user's (not a system folder such as `/usr/share/datasets/fashion-mnist`) that is
writable; else in `$XDG_CACHE_HOME/agem/decoded` (default `~/.cache/agem/decoded`).
Outside the source folder, each source folder has its own subfolder
`<key>-<hash of the folder's path>`. `AGEM_CACHE=off` turns the cache off.

When a cache is used: its manifest `<key>.json`, written last, records every source
file's size, modification and change times, inode and SHA-256, and every array file's
dtype, shape, size and CRC-32. A source whose size or times differ is hashed again: the
cache is used only if its SHA-256 is unchanged (then the manifest is brought up to
date), so a changed source is always decoded again. The change time cannot be set back
by a user, so an edit that restores the modification time is caught too; a source
modified within `RACY_SECONDS` of its decoding (a clock tick may hide a second edit) is
always hashed. An array file is read once per process through one descriptor
(`O_NOFOLLOW`), its CRC-32 and `.npy` header checked, then memory-mapped copy-on-write:
a run may write into its arrays without touching the file. A missing, partial or
corrupt cache is ignored and written again; every file is written atomically
(`agem.atomic`), and a failed write only costs the next process a decoding.

Within one process, a cache checked once is not checked again while its files and the
sources keep their sizes and times; without a usable cache folder, the decoded arrays
themselves are kept (each call gets a copy).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from agem.atomic import write_atomic, write_text_atomic
from agem.bounded import load_json

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

CACHE_VARIABLE = "AGEM_CACHE"
OFF = "off"
FOLDER = ".agem-decoded"
FORMAT = 1
NAMES = ("x_train", "y_train", "x_test", "y_test")
#: A source modified this close to its decoding is always hashed (file systems keep
#: times in ticks of up to 2 s, so a second edit within one tick keeps the time).
RACY_SECONDS = 2.0
_CHUNK = 1 << 20
_NPY_HEADER_LIMIT = 1 << 16


def cache_root() -> Path | None:
    """The cache folder outside the sources: `$AGEM_CACHE`, else
    `$XDG_CACHE_HOME/agem/decoded`, else `~/.cache/agem/decoded`; None when off."""
    env = os.environ.get(CACHE_VARIABLE, "")
    if env == OFF:
        return None
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "agem" / "decoded"


def cache_folder(key: str, sources: Sequence[Path], *, beside: bool = True) -> Path | None:
    """Where the cache of dataset `key` read from `sources` lives (see the module), or
    None when the cache is off; `beside=False` for sources in a system folder."""
    root = cache_root()
    if root is None:
        return None
    parent = Path(os.path.abspath(sources[0])).parent
    if beside and not os.environ.get(CACHE_VARIABLE) and os.access(parent, os.W_OK | os.X_OK):
        return parent / FOLDER
    digest = hashlib.sha256(str(parent.resolve()).encode()).hexdigest()[:16]
    return root / f"{key}-{digest}"


# ---- what identifies a file ------------------------------------------------------------
def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _describe_sources(sources: Sequence[Path], started_ns: int) -> list[dict[str, Any]]:
    """The manifest's record of each source file (hashed; racy if modified near
    `started_ns`, when its decoding began)."""
    out = []
    for path in sources:
        st = os.stat(path)
        racy = st.st_mtime_ns >= started_ns - int(RACY_SECONDS * 1e9)
        out.append(
            {"name": path.name, "stat": _stat_key(st), "sha256": _sha256(path), "racy": racy}
        )
    return out


def _sources_match(recorded: Any, sources: Sequence[Path]) -> tuple[bool, bool]:
    """(whether `sources` hold what the manifest `recorded`, whether the record needs
    bringing up to date because only their times or inodes changed)."""
    if not isinstance(recorded, list) or len(recorded) != len(sources):
        return False, False
    stale = False
    for entry, path in zip(recorded, sources, strict=True):
        if not isinstance(entry, dict) or entry.get("name") != path.name:
            return False, False
        st = os.stat(path)
        if entry.get("stat") == _stat_key(st) and entry.get("racy") is False:
            continue
        if entry.get("stat", [None])[0] != st.st_size or entry.get("sha256") != _sha256(path):
            return False, False
        stale = stale or entry.get("stat") != _stat_key(st)
    return True, stale


# ---- array files -------------------------------------------------------------------------
class _CrcWriter:
    """A binary file that also computes the CRC-32 of what is written to it."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.crc = 0
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        return self.handle.write(data)


def _write_array(path: Path, array: np.ndarray) -> dict[str, Any]:
    """Write `array` as a `.npy` file atomically; its manifest entry."""
    array = np.ascontiguousarray(array)
    writer: list[_CrcWriter] = []

    def write(handle: IO[bytes]) -> None:
        writer.append(_CrcWriter(handle))
        np.lib.format.write_array(writer[0], array, allow_pickle=False)

    write_atomic(path, write)
    return {
        "file": path.name,
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "size": writer[0].size,
        "crc32": writer[0].crc,
    }


def _open_regular(path: Path) -> IO[bytes]:
    """`path` opened for reading, never through a link, only if a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        raise ValueError(f"{path} is not a regular file")
    return handle


def _check_array(folder: Path, entry: Any) -> list[int]:
    """Check one array file against its manifest `entry` (header, size, CRC-32); its
    stat key. Raises ValueError or OSError when it does not match."""
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise ValueError("bad manifest entry")
    with _open_regular(folder / entry["file"]) as f:
        st = os.fstat(f.fileno())
        if st.st_size != entry.get("size"):
            raise ValueError("size differs")
        crc = 0
        while chunk := f.read(_CHUNK):
            crc = zlib.crc32(chunk, crc)
        if crc != entry.get("crc32"):
            raise ValueError("CRC-32 differs")
        f.seek(0)
        _header(f, entry)
    return _stat_key(st)


def _header(f: IO[bytes], entry: dict[str, Any]) -> tuple[np.dtype[Any], tuple[int, ...], int]:
    """The dtype, shape and data offset of the `.npy` file `f`, checked against `entry`."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(
            f, max_header_size=_NPY_HEADER_LIMIT
        )
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(
            f, max_header_size=_NPY_HEADER_LIMIT
        )
    if fortran or dtype.hasobject or dtype.str != entry.get("dtype"):
        raise ValueError("dtype differs")
    if list(shape) != entry.get("shape"):
        raise ValueError("shape differs")
    offset = f.tell()
    if offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != entry.get("size"):
        raise ValueError("size differs from the header")
    return dtype, tuple(shape), offset


def _map(folder: Path, entry: dict[str, Any], expected: list[int]) -> np.ndarray:
    """The array file of `entry`, memory-mapped copy-on-write, if it is still the file
    that was checked (its stat key is `expected`)."""
    with _open_regular(folder / entry["file"]) as f:
        if _stat_key(os.fstat(f.fileno())) != expected:
            raise ValueError("replaced since it was checked")
        dtype, shape, offset = _header(f, entry)
        if 0 in shape:
            return np.empty(shape, dtype=dtype)
        return np.memmap(f, dtype=dtype, mode="c", offset=offset, shape=shape)


# ---- the cache ---------------------------------------------------------------------------
@dataclass
class _Checked:
    """A cache checked in this process: its manifest and its array files' stat keys."""

    folder: Path
    manifest: dict[str, Any]
    arrays: list[list[int]]


@dataclass
class _Kept:
    """Decoded arrays kept in memory where no cache folder could be used."""

    sources: list[list[int]]
    arrays: tuple[np.ndarray, ...]


_memo: dict[tuple[str, tuple[str, ...]], _Checked | _Kept] = {}


def clear_memo() -> None:
    """Forget what this process checked or decoded (the files stay)."""
    _memo.clear()


def _pack(arrays: tuple[np.ndarray, ...]) -> Arrays:
    x_tr, y_tr, x_te, y_te = arrays
    return (x_tr, y_tr), (x_te, y_te)


def _read(folder: Path, key: str, sources: Sequence[Path]) -> _Checked | None:
    """The checked cache of `key` in `folder` if it matches `sources`, else None."""
    manifest_path = folder / f"{key}.json"
    try:
        manifest = load_json(manifest_path)
        if (
            not isinstance(manifest, dict)
            or manifest.get("format") != FORMAT
            or manifest.get("key") != key
            or not isinstance(manifest.get("arrays"), list)
            or len(manifest["arrays"]) != len(NAMES)
        ):
            return None
        match, stale = _sources_match(manifest.get("sources"), sources)
        if not match:
            return None
        arrays = [_check_array(folder, entry) for entry in manifest["arrays"]]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if stale:  # the same content under new times: record them, so it is not hashed again
        manifest["sources"] = _describe_sources(sources, time.time_ns())
        with contextlib.suppress(OSError):
            write_text_atomic(manifest_path, json.dumps(manifest, indent=1))
    return _Checked(folder, manifest, arrays)


def _write(
    folder: Path, key: str, described: list[dict[str, Any]], arrays: Arrays
) -> _Checked | None:
    """Store `arrays`, decoded from the sources `described`, in `folder` (the array files
    first, the manifest last); None if the folder cannot be used."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.path.islink(folder):  # never write where a planted link points
            return None
        (x_tr, y_tr), (x_te, y_te) = arrays
        entries = [
            _write_array(folder / f"{key}.{name}.npy", array)
            for name, array in zip(NAMES, (x_tr, y_tr, x_te, y_te), strict=True)
        ]
        manifest = {
            "format": FORMAT,
            "key": key,
            "sources": described,
            "arrays": entries,
        }
        write_text_atomic(folder / f"{key}.json", json.dumps(manifest, indent=1))
        stats = [_check_array(folder, entry) for entry in entries]
    except (OSError, ValueError):
        return None
    return _Checked(folder, manifest, stats)


def _still(checked: _Checked, sources: Sequence[Path]) -> bool:
    """Whether a cache checked earlier in this process still stands, by file times."""
    try:
        for entry, path in zip(checked.manifest["sources"], sources, strict=True):
            if entry["racy"] or entry["stat"] != _stat_key(os.stat(path)):
                return False
        for entry, expected in zip(checked.manifest["arrays"], checked.arrays, strict=True):
            if _stat_key(os.lstat(checked.folder / entry["file"])) != expected:
                return False
    except OSError:
        return False
    return True


def _mapped(checked: _Checked) -> Arrays | None:
    try:
        arrays = tuple(
            _map(checked.folder, entry, expected)
            for entry, expected in zip(checked.manifest["arrays"], checked.arrays, strict=True)
        )
    except (OSError, ValueError):
        return None
    return _pack(arrays)


def cached(
    key: str,
    sources: Sequence[str | Path],
    decode: Callable[[], Arrays],
    *,
    beside: bool = True,
) -> Arrays:
    """((x_train, y_train), (x_test, y_test)) of dataset `key` decoded from the files
    `sources`: from the cache when it matches them, else from `decode()` (then stored).
    `beside=False` keeps the cache out of the sources' folder (a system folder).

    The arrays returned are the caller's own: writing into them changes neither the
    cache nor what a later call returns.
    """
    paths = [Path(s) for s in sources]
    if not paths:
        raise ValueError("cached needs the source files")
    memo_key = (key, tuple(os.path.realpath(p) for p in paths))
    known = _memo.get(memo_key)
    if isinstance(known, _Checked) and _still(known, paths):
        hit = _mapped(known)
        if hit is not None:
            return hit
    if isinstance(known, _Kept) and known.sources == [_stat_key(os.stat(p)) for p in paths]:
        return _pack(tuple(a.copy() for a in known.arrays))
    _memo.pop(memo_key, None)
    folder = cache_folder(key, paths, beside=beside)
    if folder is not None:
        checked = _read(folder, key, paths)
        hit = None if checked is None else _mapped(checked)
        if checked is not None and hit is not None:
            _memo[memo_key] = checked
            return hit
    # the sources are described (hashed) before they are decoded: a change in between
    # is seen below by their stat keys, or later by their hash
    described = None if folder is None else _describe_sources(paths, time.time_ns())
    before = (
        [_stat_key(os.stat(p)) for p in paths]
        if described is None
        else [entry["stat"] for entry in described]
    )
    arrays = decode()
    if before != [_stat_key(os.stat(p)) for p in paths]:
        return arrays  # a source changed while it was decoded: keep nothing
    written = (
        None if folder is None or described is None else _write(folder, key, described, arrays)
    )
    if written is not None:
        _memo[memo_key] = written
    else:
        (x_tr, y_tr), (x_te, y_te) = arrays
        kept = tuple(a.copy() for a in (x_tr, y_tr, x_te, y_te))
        _memo[memo_key] = _Kept(before, kept)
    return arrays
