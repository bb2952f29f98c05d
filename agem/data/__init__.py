"""Dataset files: numpy-only readers (IDX, CIFAR pickles), the data directory, downloads.

Nothing here imports torch; `agem.benchmarks` turns the arrays into benchmarks.
"""

from agem.data.catalog import DATASETS, DatasetSource, RemoteFile, fetch, load, locate, search_dirs
from agem.data.cifar import CIFAR10, CIFAR100, CifarLayout, read_cifar
from agem.data.download import download_file, file_digest
from agem.data.errors import DatasetError, DatasetNotFoundError
from agem.data.idx import read_idx, write_idx
from agem.data.paths import data_root

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "DATASETS",
    "CifarLayout",
    "DatasetError",
    "DatasetNotFoundError",
    "DatasetSource",
    "RemoteFile",
    "data_root",
    "download_file",
    "fetch",
    "file_digest",
    "load",
    "locate",
    "read_cifar",
    "read_idx",
    "search_dirs",
    "write_idx",
]
