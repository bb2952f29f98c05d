"""Finding dataset files in the usual local layouts, and validating what is loaded."""

from __future__ import annotations

import dataclasses
import gzip
import io
import pickle
import tarfile

import numpy as np
import pytest

from agem.data import CIFAR10, DATASETS, DatasetError, load, locate, search_dirs, write_idx

NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def write_mnist(folder, *, n_train=20, n_test=10, gz=True, image_shape=(28, 28), labels=None):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    arrays = [
        rng.integers(0, 256, (n_train, *image_shape), dtype=np.uint8),
        (np.arange(n_train) % 10).astype(np.uint8) if labels is None else labels,
        rng.integers(0, 256, (n_test, *image_shape), dtype=np.uint8),
        (np.arange(n_test) % 10).astype(np.uint8),
    ]
    for name, a in zip(NAMES, arrays):
        write_idx(folder / (name if gz else name[:-3]), a)
    return arrays


@pytest.fixture
def no_system_dirs(monkeypatch):
    for key in DATASETS:
        monkeypatch.setitem(DATASETS, key, dataclasses.replace(DATASETS[key], system_dirs=()))


@pytest.mark.parametrize("layout", ["fashion-mnist", "FashionMNIST/raw", ""])
def test_layouts_under_the_root(tmp_path, layout, no_system_dirs):
    write_mnist(tmp_path / layout)
    assert locate("fashion-mnist", tmp_path) == tmp_path / layout
    assert locate("mnist", tmp_path / "elsewhere") is None


def test_search_order(tmp_path):
    dirs = search_dirs("fashion-mnist", tmp_path)
    assert dirs[:3] == [tmp_path / "fashion-mnist", tmp_path / "FashionMNIST/raw", tmp_path]
    assert dirs[3].as_posix() == "/usr/share/datasets/fashion-mnist"


def test_download_folder_wins_over_others(tmp_path, no_system_dirs):
    write_mnist(tmp_path / "mnist")
    write_mnist(tmp_path / "MNIST" / "raw")
    assert locate("mnist", tmp_path) == tmp_path / "mnist"


def test_uncompressed_files_are_found_and_read(tmp_path, no_system_dirs):
    arrays = write_mnist(tmp_path / "mnist", gz=False)
    assert locate("mnist", tmp_path) == tmp_path / "mnist"
    (x_tr, y_tr), (x_te, _) = load("mnist", root=tmp_path, download=False)
    np.testing.assert_array_equal(x_tr, arrays[0])
    np.testing.assert_array_equal(x_te, arrays[2])
    assert y_tr.dtype == np.int64


def test_incomplete_folder_is_not_found(tmp_path, no_system_dirs):
    write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / NAMES[3]).unlink()
    assert locate("mnist", tmp_path) is None


def test_system_folder_is_found(tmp_path, monkeypatch):
    system = tmp_path / "usr-share"
    write_mnist(system)
    source = dataclasses.replace(DATASETS["fashion-mnist"], system_dirs=(str(system),))
    monkeypatch.setitem(DATASETS, "fashion-mnist", source)
    assert locate("fashion-mnist", tmp_path / "empty-root") == system


def test_env_var_is_the_default_root(tmp_path, monkeypatch, no_system_dirs):
    write_mnist(tmp_path / "mnist")
    monkeypatch.setenv("AGEM_DATA", str(tmp_path))
    assert locate("mnist") == tmp_path / "mnist"


def test_wrong_image_size_is_rejected(tmp_path, no_system_dirs):
    write_mnist(tmp_path / "mnist", image_shape=(8, 8))
    with pytest.raises(DatasetError, match=r"expected uint8 images \[n, 28, 28\]"):
        load("mnist", root=tmp_path, download=False)


def test_label_out_of_range_is_rejected(tmp_path, no_system_dirs):
    write_mnist(tmp_path / "mnist", labels=np.full(20, 10, dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"labels must be in 0\.\.9"):
        load("mnist", root=tmp_path, download=False)


def test_label_count_mismatch_is_rejected(tmp_path, no_system_dirs):
    write_mnist(tmp_path / "mnist", labels=np.zeros(19, dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"20 images but .* 19 labels"):
        load("mnist", root=tmp_path, download=False)


def test_images_swapped_with_labels_is_rejected(tmp_path, no_system_dirs):
    write_mnist(tmp_path / "mnist")
    folder = tmp_path / "mnist"
    images = folder / NAMES[0]
    labels = folder / NAMES[1]
    tmp = folder / "tmp"
    images.rename(tmp)
    labels.rename(images)
    tmp.rename(labels)
    with pytest.raises(DatasetError, match="expected uint8 images"):
        load("mnist", root=tmp_path, download=False)


def test_corrupt_file_found_on_disk_names_the_file(tmp_path, no_system_dirs):
    write_mnist(tmp_path / "mnist")
    bad = tmp_path / "mnist" / NAMES[2]
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x03garbage"))
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz"):
        load("mnist", root=tmp_path, download=False)


def _tiny_cifar10_archive(path):
    with tarfile.open(path, "w:gz") as tar:
        for name in (*CIFAR10.train, *CIFAR10.test):
            blob = pickle.dumps(
                {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 9]}, protocol=2
            )
            info = tarfile.TarInfo(f"{CIFAR10.folder}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def test_cifar_archive_and_folder_layouts(tmp_path):
    (tmp_path / "cifar10").mkdir()
    _tiny_cifar10_archive(tmp_path / "cifar10" / CIFAR10.archive)
    assert locate("cifar10", tmp_path) == tmp_path / "cifar10" / CIFAR10.archive
    (x_tr, _), (x_te, _) = load("cifar10", root=tmp_path, download=False)
    assert x_tr.shape == (10, 3, 32, 32) and x_te.shape == (2, 3, 32, 32)
    # torchvision's layout: the extracted folder directly under the root
    with tarfile.open(tmp_path / "cifar10" / CIFAR10.archive) as tar:
        tar.extractall(tmp_path / "tv", filter="data")
    assert locate("cifar10", tmp_path / "tv") == tmp_path / "tv" / CIFAR10.folder
    # the root may be the extracted folder itself
    folder = tmp_path / "tv" / CIFAR10.folder
    assert locate("cifar10", folder) == folder


def test_unknown_dataset(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        locate("svhn", tmp_path)
