"""Read and write IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or raw.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values in C order. Reading
checks every part of that and that the file holds exactly the announced number of
values, so a corrupt or truncated download fails here with a clear message.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from pathlib import Path

import numpy as np

from agem.data.errors import DatasetError

# IDX type code -> big-endian numpy dtype
IDX_TYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in IDX_TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_DIMS = 16  # real IDX files have 1 to 4


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _gzip_isize(path: Path) -> int:
    """The uncompressed size mod 2**32 that a gzip file records in its last 4 bytes."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        if f.tell() < 18:  # header (10) + trailer (8)
            raise DatasetError(f"{path}: truncated gzip file")
        f.seek(-4, 2)
        return int(struct.unpack("<I", f.read(4))[0])


def _read_exact(f: io.BufferedIOBase, n: int, path: Path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise DatasetError(f"{path}: truncated IDX file (ends inside the {what})")
    return data


def _read(f: io.BufferedIOBase, path: Path, stored: int, modulo: bool) -> np.ndarray:
    """Parse an IDX stream whose uncompressed size is `stored` (mod 2**32 if `modulo`)."""
    magic = _read_exact(f, 4, path, "magic number")
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_TYPES:
        raise DatasetError(
            f"{path}: not an IDX file (bad magic number 0x{magic.hex()}; "
            "expected 0x0000TTDD with a known type code TT)"
        )
    ndim = magic[3]
    if not 1 <= ndim <= _MAX_DIMS:
        raise DatasetError(f"{path}: IDX header announces {ndim} dimensions")
    shape = struct.unpack(f">{ndim}I", _read_exact(f, 4 * ndim, path, "header"))
    dtype = np.dtype(IDX_TYPES[magic[2]])
    count = int(np.prod(shape, dtype=np.int64))
    size = 4 + 4 * ndim + count * dtype.itemsize
    if (size % 2**32 if modulo else size) != stored:
        # checked before allocating, so a corrupt header cannot ask for huge memory
        raise DatasetError(
            f"{path}: corrupt or truncated IDX file (header announces shape {tuple(shape)}, "
            f"{size} bytes; the file holds {stored}{' mod 2**32' if modulo else ''})"
        )
    out = np.empty(count, dtype=dtype)
    view = out.view(np.uint8).data
    filled = 0
    while filled < view.nbytes:
        n = f.readinto(view[filled:])
        if not n:
            raise DatasetError(
                f"{path}: truncated IDX file ({filled} of {view.nbytes} data bytes "
                f"for shape {tuple(shape)})"
            )
        filled += n
    if f.read(1):
        raise DatasetError(f"{path}: IDX file has bytes after the {tuple(shape)} values")
    if dtype.itemsize > 1:
        out = out.astype(dtype.newbyteorder("="))
    return out.reshape(shape)


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in the IDX file at `path` (gzip-compressed or not, by content).

    Raises `DatasetError` on a bad magic number, a truncated file, trailing bytes or a
    corrupt gzip stream; `FileNotFoundError` if the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no IDX file at {path}")
    try:
        if _is_gzip(path):
            isize = _gzip_isize(path)
            with gzip.open(path, "rb") as gz:
                return _read(gz, path, isize, True)
        with open(path, "rb") as raw:
            return _read(raw, path, path.stat().st_size, False)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DatasetError(f"{path}: corrupt or truncated gzip data ({err})") from None


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write `array` as an IDX file; gzip it when `compress` (default: path ends in .gz)."""
    path = Path(path)
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"IDX cannot store dtype {array.dtype}")
    if not 1 <= array.ndim <= _MAX_DIMS:
        raise ValueError(f"IDX needs 1 to {_MAX_DIMS} dimensions, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header)
        f.write(body)
    return path
