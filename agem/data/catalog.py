"""The datasets agem knows: their files, checksums, mirrors and usual local layouts.

`locate` finds a dataset's files without touching the network; `fetch` also downloads
them (checksummed, atomically) into `<root>/<folder>` when allowed; `load` returns
the data as numpy arrays, validated.

Layouts searched under the data root, in order: `<root>/<key>` (where agem downloads,
e.g. `~/.cache/agem/fashion-mnist`), torchvision's `<root>/FashionMNIST/raw`, then the
root itself (a folder holding the files directly), then system folders such as Debian's
`/usr/share/datasets/fashion-mnist` (package `dataset-fashion-mnist`). IDX files may be
gzip-compressed (`.gz`, as published) or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agem.data.cache import cached
from agem.data.cifar import CIFAR10, CIFAR100, CifarLayout, read_cifar
from agem.data.download import download_first
from agem.data.errors import DatasetError, DatasetNotFoundError
from agem.data.idx import read_idx
from agem.data.paths import data_root

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class RemoteFile:
    """One published file and its published checksum."""

    name: str
    md5: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class DatasetSource:
    """Everything needed to find, download and read one dataset.

    IDX datasets list their files in the order train images, train labels, test
    images, test labels; CIFAR datasets list their one archive and set `cifar`.
    """

    key: str
    title: str
    files: tuple[RemoteFile, ...]
    mirrors: tuple[str, ...]  # base URLs, tried in order: the most reliable first
    folders: tuple[str, ...]  # layouts under the data root; the first is the download target
    system_dirs: tuple[str, ...] = ()
    apt_package: str | None = None  # a distribution package that installs the files
    apt_dir: str | None = None  # where that package puts them
    cifar: CifarLayout | None = None
    image_shape: tuple[int, ...] = (28, 28)
    n_classes: int = 10

    def expected(self) -> str:
        """The files this dataset needs, in words."""
        names = ", ".join(f.name for f in self.files)
        if self.cifar is not None:
            return f"{names} (or its extracted folder {self.cifar.folder}/)"
        return f"{names} (gzip-compressed or not), all in one folder"

    def find_in(self, directory: Path) -> Path | None:
        """What to read in `directory` (the folder, or CIFAR's archive), or None."""
        if self.cifar is not None:
            batches = self.cifar.train + self.cifar.test
            for folder in (directory, directory / self.cifar.folder):
                if all((folder / n).is_file() for n in batches):
                    return folder
            archive = directory / self.cifar.archive
            return archive if archive.is_file() else None
        if all(_idx_file(directory, f.name) is not None for f in self.files):
            return directory
        return None

    def source_files(self, path: Path) -> list[Path] | None:
        """The files `load` decodes at `path` (what `find_in` returned), or None if one
        is missing."""
        if self.cifar is not None:
            if not path.is_dir():
                return [path]
            files = [path / n for n in self.cifar.train + self.cifar.test]
            return files if all(f.is_file() for f in files) else None
        found = [_idx_file(path, f.name) for f in self.files]
        return None if None in found else [f for f in found if f is not None]


def _idx_file(directory: Path, name: str) -> Path | None:
    for candidate in (name, name.removesuffix(".gz")):
        path = directory / candidate
        if path.is_file():
            return path
    return None


_MNIST_MD5 = (
    ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
)
_FASHION_MD5 = (
    ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
    ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
    ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
)

#: MNIST's hosts, in the order tried: PyTorch's copy (what torchvision downloads), Google's
#: copy (TensorFlow's), then the original site, which refuses downloads (HTTP 403) at times.
#: They serve the same files, checked against the same MD5 sums.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

DATASETS: dict[str, DatasetSource] = {
    "mnist": DatasetSource(
        "mnist",
        "MNIST",
        tuple(RemoteFile(n, md5=m) for n, m in _MNIST_MD5),
        MNIST_MIRRORS,
        ("mnist", "MNIST/raw"),
    ),
    "fashion-mnist": DatasetSource(
        "fashion-mnist",
        "Fashion-MNIST",
        tuple(RemoteFile(n, md5=m) for n, m in _FASHION_MD5),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        ("fashion-mnist", "FashionMNIST/raw"),
        system_dirs=("/usr/share/datasets/fashion-mnist", "~/.keras/datasets/fashion-mnist"),
        apt_package="dataset-fashion-mnist",
        apt_dir="/usr/share/datasets/fashion-mnist",
    ),
    "cifar10": DatasetSource(
        "cifar10",
        "CIFAR-10",
        (RemoteFile("cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a"),),
        ("https://www.cs.toronto.edu/~kriz/",),
        ("cifar10",),
        cifar=CIFAR10,
        image_shape=(3, 32, 32),
        n_classes=10,
    ),
    "cifar100": DatasetSource(
        "cifar100",
        "CIFAR-100",
        (RemoteFile("cifar-100-python.tar.gz", md5="eb9058c3a382ffc7106e4002c42a8d85"),),
        ("https://www.cs.toronto.edu/~kriz/",),
        ("cifar100",),
        cifar=CIFAR100,
        image_shape=(3, 32, 32),
        n_classes=100,
    ),
}


def get_source(key: str) -> DatasetSource:
    """The dataset registered under `key`, or a ValueError naming the known ones."""
    try:
        return DATASETS[key]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise ValueError(f"unknown dataset {key!r}; known datasets: {known}") from None


def search_dirs(
    key: str, root: str | Path | None = None, *, system_dirs: bool = True
) -> list[Path]:
    """The folders searched for dataset `key`, in order (without the system folders such
    as /usr/share/datasets when `system_dirs` is False)."""
    source = get_source(key)
    base = data_root(root)
    dirs = [base / f for f in source.folders] + [base]
    if system_dirs:
        dirs += [Path(d).expanduser() for d in source.system_dirs]
    return list(dict.fromkeys(dirs))


def locate(key: str, root: str | Path | None = None, *, system_dirs: bool = True) -> Path | None:
    """Where dataset `key` is on disk (a folder, or CIFAR's archive), or None. No network."""
    source = get_source(key)
    for directory in search_dirs(key, root, system_dirs=system_dirs):
        found = source.find_in(directory)
        if found is not None:
            return found
    return None


def _missing(
    source: DatasetSource, dirs: list[Path], target: Path, reason: str, *, offered: bool
) -> str:
    ways = []
    if not offered:
        ways.append(f"allow the download (download=True, no --no-download) into {target}")
    if source.apt_package:
        into = f" (installs into {source.apt_dir})" if source.apt_dir else ""
        ways.append(f"on Debian/Ubuntu `apt-get install {source.apt_package}`{into}")
    ways.append(f"download the files from {source.mirrors[0]} into {target}")
    ways.append("point root= / --data-dir / $AGEM_DATA at a folder that holds them")
    return (
        f"{source.title} not found. Expected {source.expected()}. "
        f"Looked in: {', '.join(str(d) for d in dirs)}. {reason}. "
        f"To get it: {'; or '.join(ways)}."
    )


def fetch(
    key: str,
    *,
    root: str | Path | None = None,
    download: bool = True,
    progress: bool = True,
    system_dirs: bool = True,
) -> Path:
    """Where dataset `key` is on disk, downloading it into `<root>/<key>` if needed.

    Raises `DatasetNotFoundError` (a `FileNotFoundError`) naming the expected files,
    the folders searched and how to get them, when the files are missing and
    `download` is False or the download fails. `system_dirs=False` searches only under
    the data root (no system folders).
    """
    source = get_source(key)
    found = locate(key, root, system_dirs=system_dirs)
    if found is not None:
        return found
    dirs = search_dirs(key, root, system_dirs=system_dirs)
    target = data_root(root) / source.folders[0]
    if not download:
        reason = "Downloading is disabled (download=False / --no-download)"
        raise DatasetNotFoundError(_missing(source, dirs, target, reason, offered=False))
    created = [d for d in (target, *target.parents) if not d.exists()]  # deepest first
    try:
        for f in source.files:
            if _idx_file(target, f.name) is None:
                urls = [m + f.name for m in source.mirrors]
                download_first(urls, target / f.name, md5=f.md5, sha256=f.sha256, progress=progress)
    except BaseException as err:
        _remove_empty(created)  # a failed download leaves no empty folders behind
        if not isinstance(err, (DatasetError, OSError)):
            raise
        raise DatasetNotFoundError(
            _missing(source, dirs, target, f"Download failed: {err}", offered=True)
        ) from err
    found = source.find_in(target)
    if found is None:  # pragma: no cover - every file was just written
        raise DatasetNotFoundError(
            _missing(source, dirs, target, "Download incomplete", offered=True)
        )
    return found


def _remove_empty(folders: list[Path]) -> None:
    """Remove each of `folders` (deepest first) that is empty; keep the others."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _read_idx_pair(
    directory: Path, images: str, labels: str, source: DatasetSource
) -> tuple[np.ndarray, np.ndarray]:
    img_path = _idx_file(directory, images)
    lbl_path = _idx_file(directory, labels)
    if img_path is None or lbl_path is None:
        raise FileNotFoundError(f"{source.title}: {images} or {labels} missing in {directory}")
    x = read_idx(img_path)
    y = read_idx(lbl_path)
    if (
        x.dtype != np.uint8
        or x.ndim != 1 + len(source.image_shape)
        or x.shape[1:] != source.image_shape
    ):
        raise DatasetError(
            f"{img_path}: expected uint8 images [n, {', '.join(map(str, source.image_shape))}], "
            f"found {x.dtype} {list(x.shape)}"
        )
    if y.dtype != np.uint8 or y.ndim != 1:
        raise DatasetError(
            f"{lbl_path}: expected uint8 labels [n], found {y.dtype} {list(y.shape)}"
        )
    if x.shape[0] == 0:
        raise DatasetError(f"{img_path} holds no samples (an IDX file with 0 images)")
    if y.shape[0] != x.shape[0]:
        raise DatasetError(
            f"{img_path} has {x.shape[0]} images but {lbl_path} has {y.shape[0]} labels"
        )
    if y.size and int(y.max()) >= source.n_classes:
        raise DatasetError(
            f"{lbl_path}: labels must be in 0..{source.n_classes - 1}, found {int(y.max())}"
        )
    return x, y.astype(np.int64)


def decode(source: DatasetSource, path: Path) -> Arrays:
    """The validated arrays of `source`'s files at `path` (see `load`), decoded now."""
    if source.cifar is not None:
        return read_cifar(path, source.cifar)
    names = [f.name for f in source.files]
    train = _read_idx_pair(path, names[0], names[1], source)
    test = _read_idx_pair(path, names[2], names[3], source)
    return train, test


def load(
    key: str,
    *,
    root: str | Path | None = None,
    download: bool = True,
    progress: bool = True,
) -> Arrays:
    """((x_train, y_train), (x_test, y_test)) of dataset `key` as validated numpy arrays.

    Images are uint8 (MNIST-like: [n, 28, 28]; CIFAR: [n, 3, 32, 32]); labels int64.
    The files are decoded once; later calls, in this process or another, read the
    decoded arrays back (`agem.data.cache`).
    """
    source = get_source(key)
    path = fetch(key, root=root, download=download, progress=progress)
    files = source.source_files(path)
    if files is None:
        return decode(source, path)  # names what is missing
    system = [Path(d).expanduser() for d in source.system_dirs]
    beside = not any(path == d or d in path.parents for d in system)
    return cached(key, files, lambda: decode(source, path), beside=beside)
