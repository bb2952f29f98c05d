"""Read the CIFAR-10 / CIFAR-100 "python version" files, from the official `.tar.gz`
or from its extracted folder.

The files are Python pickles. They are read with an unpickler that only accepts plain
containers and numpy arrays, so a tampered file cannot run code. Each batch must hold
`data` as a uint8 array of shape [n, 3072] and one in-range label per row.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agem.data.errors import DatasetError


@dataclass(frozen=True)
class CifarLayout:
    """Where a CIFAR variant keeps its batches and how its labels are named."""

    archive: str  # the official archive's file name
    folder: str  # the folder the archive extracts to
    train: tuple[str, ...]  # batch files of the training set
    test: tuple[str, ...]
    label_key: str
    n_classes: int


CIFAR10 = CifarLayout(
    "cifar-10-python.tar.gz",
    "cifar-10-batches-py",
    tuple(f"data_batch_{i}" for i in range(1, 6)),
    ("test_batch",),
    "labels",
    10,
)
CIFAR100 = CifarLayout(
    "cifar-100-python.tar.gz", "cifar-100-python", ("train",), ("test",), "fine_labels", 100
)

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles containers, strings, numbers and numpy arrays; nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise DatasetError(f"refusing to load {module}.{name} from a CIFAR pickle")
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = module.replace("numpy.core", "numpy._core", 1)  # numpy >= 2
        return super().find_class(module, name)


def _unpickle(data: bytes, where: str) -> dict[str, Any]:
    try:
        obj = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except DatasetError as err:
        raise DatasetError(f"{where}: {err}") from None
    except Exception as err:  # any unpickling failure means a corrupt file
        raise DatasetError(f"{where}: not a readable CIFAR pickle ({err})") from None
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: expected a dict, found {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def parse_batch(data: bytes, layout: CifarLayout, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [n, 3, 32, 32], labels int64 [n]) of one pickled batch."""
    batch = _unpickle(data, where)
    for key in ("data", layout.label_key):
        if key not in batch:
            raise DatasetError(f"{where}: batch has no {key!r} entry")
    x = batch["data"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        desc = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DatasetError(f"{where}: 'data' must be a uint8 array [n, 3072], found {desc}")
    try:
        y = np.asarray(batch[layout.label_key], dtype=np.int64)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: labels are not integers") from None
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise DatasetError(f"{where}: {x.shape[0]} images but labels of shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= layout.n_classes):
        raise DatasetError(
            f"{where}: labels must be in 0..{layout.n_classes - 1}, "
            f"found {int(y.min())}..{int(y.max())}"
        )
    return x.reshape(-1, 3, 32, 32), y


def _concat(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _from_folder(folder: Path, layout: CifarLayout, names: tuple[str, ...]) -> list[Any]:
    parts = []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"CIFAR batch file missing: {path}")
        parts.append(parse_batch(path.read_bytes(), layout, str(path)))
    return parts


def _from_archive(archive: Path, layout: CifarLayout) -> tuple[list[Any], list[Any]]:
    wanted = {f"{layout.folder}/{n}" for n in layout.train + layout.test}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    f = tar.extractfile(member)
                    if f is not None:
                        found[member.name] = f.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise DatasetError(f"{archive}: corrupt or truncated archive ({err})") from None
    missing = sorted(wanted - set(found))
    if missing:
        raise DatasetError(f"{archive}: archive lacks {', '.join(missing)}")

    def parse(names: tuple[str, ...]) -> list[Any]:
        keys = [f"{layout.folder}/{n}" for n in names]
        return [parse_batch(found[k], layout, f"{archive}:{k}") for k in keys]

    return parse(layout.train), parse(layout.test)


def read_cifar(
    path: str | Path, layout: CifarLayout
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((x_train, y_train), (x_test, y_test)) from a CIFAR archive or extracted folder.

    `path` is the official `.tar.gz` or the folder holding the batch files (for
    CIFAR-10 `cifar-10-batches-py/`). Images are uint8 [n, 3, 32, 32], labels int64
    (CIFAR-100: the 100 fine labels).
    """
    path = Path(path)
    if path.is_dir():
        train = _from_folder(path, layout, layout.train)
        test = _from_folder(path, layout, layout.test)
    elif path.is_file():
        train, test = _from_archive(path, layout)
    else:
        raise FileNotFoundError(f"no CIFAR archive or folder at {path}")
    return _concat(train), _concat(test)
