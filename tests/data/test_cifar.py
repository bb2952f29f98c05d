"""CIFAR python-pickle reader: archives and folders the test writes, and clear errors."""

from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from agem.data import CIFAR10, CIFAR100, CifarLayout, DatasetError, read_cifar


def _batch(layout: CifarLayout, n: int, seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    y = rng.integers(0, layout.n_classes, size=n)
    d = {b"data": x, layout.label_key.encode(): [int(v) for v in y], b"batch_label": b"x"}
    if layout is CIFAR100:
        d[b"coarse_labels"] = [0] * n
    return d, x, y


def write_cifar(root, layout: CifarLayout, *, n: int = 6, archive: bool = True):
    """Write a tiny CIFAR dataset (archive or extracted folder); return the arrays."""
    blobs, xs, ys = {}, {"train": [], "test": []}, {"train": [], "test": []}
    for split, names in (("train", layout.train), ("test", layout.test)):
        for i, name in enumerate(names):
            d, x, y = _batch(layout, n, hash((split, i)) % 1000)
            blobs[name] = pickle.dumps(d, protocol=2)
            xs[split].append(x)
            ys[split].append(y)
    if archive:
        path = root / layout.archive
        with tarfile.open(path, "w:gz") as tar:
            for name, blob in blobs.items():
                info = tarfile.TarInfo(f"{layout.folder}/{name}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    else:
        path = root / layout.folder
        path.mkdir(parents=True)
        for name, blob in blobs.items():
            (path / name).write_bytes(blob)
    arrays = {s: (np.concatenate(xs[s]).reshape(-1, 3, 32, 32), np.concatenate(ys[s])) for s in xs}
    return path, arrays


@pytest.mark.parametrize("layout", [CIFAR10, CIFAR100], ids=["cifar10", "cifar100"])
@pytest.mark.parametrize("archive", [True, False], ids=["tar.gz", "folder"])
def test_round_trip(tmp_path, layout, archive):
    path, arrays = write_cifar(tmp_path, layout, archive=archive)
    (x_tr, y_tr), (x_te, y_te) = read_cifar(path, layout)
    assert x_tr.dtype == np.uint8 and x_tr.shape == (6 * len(layout.train), 3, 32, 32)
    assert y_tr.dtype == np.int64
    np.testing.assert_array_equal(x_tr, arrays["train"][0])
    np.testing.assert_array_equal(y_tr, arrays["train"][1])
    np.testing.assert_array_equal(x_te, arrays["test"][0])
    np.testing.assert_array_equal(y_te, arrays["test"][1])


def test_channel_layout_is_rgb_planes(tmp_path):
    path, arrays = write_cifar(tmp_path, CIFAR10, archive=False)
    (x_tr, _), _ = read_cifar(path, CIFAR10)
    flat = arrays["train"][0].reshape(-1, 3072)
    # the first 1024 values are the red plane, row-major
    np.testing.assert_array_equal(x_tr[0, 0].reshape(-1), flat[0, :1024])
    np.testing.assert_array_equal(x_tr[0, 2, 31], flat[0, 3072 - 32 :])


def test_truncated_archive_is_a_clear_error(tmp_path):
    path, _ = write_cifar(tmp_path, CIFAR10)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated archive"):
        read_cifar(path, CIFAR10)


def test_not_a_tar_is_a_clear_error(tmp_path):
    path = tmp_path / CIFAR10.archive
    path.write_bytes(b"hello, this is no archive" * 10)
    with pytest.raises(DatasetError, match="corrupt or truncated archive"):
        read_cifar(path, CIFAR10)


def test_archive_missing_a_batch(tmp_path):
    path = tmp_path / CIFAR100.archive
    with tarfile.open(path, "w:gz") as tar:
        blob = pickle.dumps(_batch(CIFAR100, 2, 0)[0])
        info = tarfile.TarInfo(f"{CIFAR100.folder}/train")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(DatasetError, match="lacks cifar-100-python/test"):
        read_cifar(path, CIFAR100)


def _folder_with(tmp_path, layout, mutate):
    path, _ = write_cifar(tmp_path, layout, archive=False)
    d, _, _ = _batch(layout, 4, 1)
    mutate(d)
    (path / layout.test[0]).write_bytes(pickle.dumps(d, protocol=2))
    return path


def test_label_out_of_range(tmp_path):
    path = _folder_with(tmp_path, CIFAR10, lambda d: d[b"labels"].__setitem__(0, 10))
    with pytest.raises(DatasetError, match=r"labels must be in 0\.\.9"):
        read_cifar(path, CIFAR10)


def test_wrong_data_shape(tmp_path):
    path = _folder_with(tmp_path, CIFAR10, lambda d: d.__setitem__(b"data", d[b"data"][:, :100]))
    with pytest.raises(DatasetError, match=r"uint8 array \[n, 3072\]"):
        read_cifar(path, CIFAR10)


def test_label_count_mismatch(tmp_path):
    path = _folder_with(tmp_path, CIFAR10, lambda d: d[b"labels"].pop())
    with pytest.raises(DatasetError, match="4 images but labels"):
        read_cifar(path, CIFAR10)


def test_missing_label_key(tmp_path):
    path = _folder_with(tmp_path, CIFAR100, lambda d: d.pop(b"fine_labels"))
    with pytest.raises(DatasetError, match="no 'fine_labels'"):
        read_cifar(path, CIFAR100)


def test_truncated_pickle(tmp_path):
    path, _ = write_cifar(tmp_path, CIFAR10, archive=False)
    batch = path / "test_batch"
    batch.write_bytes(batch.read_bytes()[:500])
    with pytest.raises(DatasetError, match="not a readable CIFAR pickle"):
        read_cifar(path, CIFAR10)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_pickle_cannot_run_code(tmp_path):
    path, _ = write_cifar(tmp_path, CIFAR10, archive=False)
    (path / "test_batch").write_bytes(pickle.dumps({b"data": _Evil()}))
    with pytest.raises(DatasetError, match="refusing to load"):
        read_cifar(path, CIFAR10)


def test_missing_batch_file_in_folder(tmp_path):
    path, _ = write_cifar(tmp_path, CIFAR10, archive=False)
    (path / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        read_cifar(path, CIFAR10)


def test_nothing_at_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_cifar(tmp_path / "none", CIFAR10)


def test_python2_style_module_names_are_read(tmp_path):
    """The official files name numpy.core.multiarray (pre-numpy-2); that must load."""
    path, arrays = write_cifar(tmp_path, CIFAR10, archive=False)
    for name in (*CIFAR10.train, *CIFAR10.test):
        blob = (path / name).read_bytes()
        (path / name).write_bytes(blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert b"numpy.core.multiarray" in (path / "test_batch").read_bytes()
    _, (x_te, _) = read_cifar(path, CIFAR10)
    np.testing.assert_array_equal(x_te, arrays["test"][0])
