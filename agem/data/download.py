"""Download one file with checksum verification, a progress bar and an atomic write.

The bytes go to a temporary file next to the destination and are renamed into place
only once their checksum matched, so an interrupted or corrupt download never leaves a
partial file under the final name.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from agem.data.errors import DatasetError

CHUNK = 1 << 16


def file_digest(path: str | Path, algorithm: str = "md5") -> str:
    """The hex digest of the file at `path` (`md5` or `sha256`)."""
    h = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _checks(md5: str | None, sha256: str | None) -> dict[str, str]:
    checks = {}
    for name, value, length in (("md5", md5, 32), ("sha256", sha256, 64)):
        if value is None:
            continue
        value = value.lower()
        if len(value) != length or any(c not in "0123456789abcdef" for c in value):
            raise ValueError(f"{name} must be {length} hex digits, got {value!r}")
        checks[name] = value
    if not checks:
        raise ValueError("download_file needs an md5 or a sha256 checksum")
    return checks


def download_file(
    url: str,
    dest: str | Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Fetch `url` (http, https or file) to `dest`, verifying its MD5 and/or SHA-256.

    Raises `DatasetError` on a checksum mismatch or a short read and `OSError` (for
    example `urllib.error.URLError`) when the server cannot be reached; in every failure
    case no file is left at `dest` or beside it.
    """
    from tqdm.auto import tqdm

    checks = _checks(md5, sha256)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    hashes = {name: hashlib.new(name, usedforsecurity=False) for name in checks}
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                disable=None if progress else True,
                leave=False,
            ) as bar:
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    for h in hashes.values():
                        h.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total is not None and received != total:
            raise DatasetError(f"{url}: received {received} of {total} bytes")
        for name, expected in checks.items():
            got = hashes[name].hexdigest()
            if got != expected:
                raise DatasetError(
                    f"{url}: {name} checksum mismatch (expected {expected}, got {got})"
                )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def download_first(
    urls: Sequence[str],
    dest: str | Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Try each mirror in `urls` in turn; raise `DatasetError` listing every failure."""
    if not urls:
        raise ValueError("urls must name at least one mirror")
    failures = []
    for url in urls:
        try:
            return download_file(
                url, dest, md5=md5, sha256=sha256, progress=progress, timeout=timeout
            )
        except (OSError, DatasetError, http.client.HTTPException) as err:
            failures.append(f"{url}: {err}")
    raise DatasetError(f"could not download {Path(dest).name}: " + "; ".join(failures))
