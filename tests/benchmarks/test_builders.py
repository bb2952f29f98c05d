"""The dataset builders and their registry entries, on tiny IDX / CIFAR files written here."""

from __future__ import annotations

import dataclasses
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

import agem.benchmarks as B
from agem.benchmarks.registry import BENCHMARKS, DEFAULT_BENCHMARK
from agem.data import CIFAR10, CIFAR100, DATASETS, DatasetNotFoundError, write_idx

IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def write_mnist(folder, n_train=40, n_test=20, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        (np.arange(n_train) % 10).astype(np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        (np.arange(n_test) % 10).astype(np.uint8),
    )
    for name, a in zip(IDX_NAMES, arrays):
        write_idx(folder / name, a)
    return arrays


def write_cifar(folder, layout, per_class=2):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with tarfile.open(folder / layout.archive, "w:gz") as tar:
        for name in (*layout.train, *layout.test):
            n = per_class * layout.n_classes
            d = {
                b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                layout.label_key.encode(): [i % layout.n_classes for i in range(n)],
            }
            blob = pickle.dumps(d, protocol=2)
            info = tarfile.TarInfo(f"{layout.folder}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A data root with tiny MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100; no system dirs."""
    for key in DATASETS:
        monkeypatch.setitem(DATASETS, key, dataclasses.replace(DATASETS[key], system_dirs=()))
    write_mnist(tmp_path / "mnist", seed=0)
    write_mnist(tmp_path / "fashion-mnist", seed=1)
    write_cifar(tmp_path / "cifar10", CIFAR10)
    write_cifar(tmp_path / "cifar100", CIFAR100, per_class=1)
    return tmp_path


def _x(exp):
    return exp.dataset.batch(slice(None))[0]


@pytest.mark.parametrize("builder", [B.permuted_mnist, B.permuted_fashion_mnist])
def test_permuted_builders(root, builder):
    bm = builder(3, seed=0, root=root, download=False)
    assert bm.n_experiences == 3 and bm.n_classes == 10 and not bm.task_labels
    x = _x(bm.train_stream[0])
    assert x.shape == (40, 784) and x.dtype == torch.float32
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert len(bm.test_stream[2]) == 20
    assert len(bm.info["permutations"]) == 3
    again = builder(3, seed=0, root=root, download=False)
    other = builder(3, seed=1, root=root, download=False)
    assert again.info["permutations"] == bm.info["permutations"] != other.info["permutations"]
    assert torch.equal(_x(again.test_stream[1]), _x(bm.test_stream[1]))


def test_mnist_and_fashion_read_their_own_files(root):
    a = _x(
        B.split_mnist(seed=0, root=root, download=False, fixed_class_order=range(10)).train_stream[
            0
        ]
    )
    b = _x(
        B.split_fashion_mnist(
            seed=0, root=root, download=False, fixed_class_order=range(10)
        ).train_stream[0]
    )
    assert not torch.equal(a, b)


def test_permuted_options(root):
    bm = B.permuted_mnist(
        4,
        seed=0,
        root=root,
        download=False,
        train_subset=10,
        flatten=False,
        validation_experiences=1,
    )
    assert bm.n_experiences == 3 and bm.info["validation"].n_experiences == 1
    assert _x(bm.train_stream[0]).shape == (10, 1, 28, 28)
    std = B.permuted_mnist(2, seed=0, root=root, download=False, standardize=True)
    assert abs(float(_x(std.train_stream[0]).mean())) < 1e-4


def test_rotated_mnist(root):
    bm = B.rotated_mnist(4, seed=0, root=root, download=False)
    assert bm.n_experiences == 4
    assert all(45 * i <= a < 45 * (i + 1) for i, a in enumerate(bm.info["angles"]))
    assert _x(bm.train_stream[0]).shape == (40, 784)
    assert B.rotated_mnist(4, seed=0, root=root, download=False).info["angles"] == bm.info["angles"]
    assert B.rotated_mnist(4, seed=5, root=root, download=False).info["angles"] != bm.info["angles"]
    unflat = B.rotated_mnist(2, seed=0, root=root, download=False, angles=[0, 90], flatten=False)
    assert _x(unflat.test_stream[1]).shape == (20, 1, 28, 28)


@pytest.mark.parametrize("builder", [B.split_mnist, B.split_fashion_mnist])
def test_split_mnist_builders(root, builder):
    bm = builder(seed=0, root=root, download=False)
    assert bm.n_experiences == 5
    groups = [set(e.classes_in_this_experience) for e in bm.train_stream]
    assert set().union(*groups) == set(range(10)) and sum(map(len, groups)) == 10
    tl = builder(seed=0, root=root, download=False, task_labels=True)
    assert [e.task_label for e in tl.test_stream] == [0, 1, 2, 3, 4]
    assert all(e.classes_in_this_experience == (0, 1) for e in tl.train_stream)


def test_split_cifar10(root):
    bm = B.split_cifar10(seed=0, root=root, download=False)
    assert bm.n_experiences == 5 and bm.n_classes == 10
    x = _x(bm.train_stream[0])
    assert (
        x.shape == (2 * 2 * 5, 3, 32, 32) and x.dtype == torch.float32
    )  # 2 classes x 2 x 5 batches
    assert (
        _x(B.split_cifar10(seed=0, root=root, download=False, flatten=True).test_stream[0]).shape[1]
        == 3072
    )


def test_split_cifar100_agem_setting(root):
    bm = B.split_cifar100(
        seed=0, root=root, download=False, task_labels=True, validation_experiences=3
    )
    assert bm.n_experiences == 17 and bm.info["validation"].n_experiences == 3
    assert [e.task_label for e in bm.train_stream] == list(range(17))
    assert all(e.classes_in_this_experience == tuple(range(5)) for e in bm.train_stream)
    assert len(bm.test_stream[0]) == 5
    classes = [c for e in bm.info["validation"].train_stream for c in e.classes_in_this_experience]
    assert classes == [0, 1, 2, 3, 4] * 3
    order = bm.info["class_order"]
    assert sorted(order) == list(range(100))
    std = B.split_cifar100(seed=0, root=root, download=False, standardize=True)
    assert _x(std.train_stream[0]).shape == (5, 3, 32, 32)


def test_missing_files_name_the_builder_dataset(tmp_path, monkeypatch):
    monkeypatch.setitem(
        DATASETS, "fashion-mnist", dataclasses.replace(DATASETS["fashion-mnist"], system_dirs=())
    )
    with pytest.raises(DatasetNotFoundError, match="Fashion-MNIST not found"):
        B.permuted_fashion_mnist(2, root=tmp_path, download=False)
    with pytest.raises(DatasetNotFoundError, match="CIFAR-100 not found"):
        B.split_cifar100(root=tmp_path, download=False)


def test_registry_builds_every_entry(root):
    assert DEFAULT_BENCHMARK == "permuted_digits" and BENCHMARKS[DEFAULT_BENCHMARK].offline
    expected = {
        "permuted_mnist",
        "permuted_fashion_mnist",
        "rotated_mnist",
        "split_mnist",
        "split_fashion_mnist",
        "split_cifar10",
        "split_cifar100",
        "permuted_digits",
        "split_digits",
    }
    assert expected <= set(BENCHMARKS)
    for name in sorted(expected):
        spec = BENCHMARKS[name]
        n = 5 if name != "split_cifar100" else 20
        bm = spec.build(n_experiences=n, seed=0, task_labels=False, data_dir=root, download=False)
        assert bm.n_experiences == n, name
        assert bm.name == name
        assert spec.offline == (spec.dataset is None), name
        if spec.dataset is not None:
            assert spec.dataset in DATASETS


def test_registry_passes_task_labels(root):
    bm = BENCHMARKS["split_mnist"].build(
        n_experiences=5, seed=0, task_labels=True, data_dir=root, download=False
    )
    assert bm.task_labels and bm.train_stream[3].task_label == 3


DIGITS_SHA256 = "65e5b4619795efb40c1082f4c350c049e4ad552200d369b6ae99e21eef5e72c5"


def test_packaged_digits_are_the_uci_digits():
    """The shipped array file holds the 1,797 digits unchanged (content hash, class counts)."""
    import hashlib

    from agem.benchmarks.digits import _digits_arrays

    images, labels = _digits_arrays()
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8)
    assert int(images.max()) == 16 and int(images.min()) == 0
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    digest = hashlib.sha256(images.tobytes() + labels.astype(np.int64).tobytes()).hexdigest()
    assert digest == DIGITS_SHA256
