"""IDX reader/writer: round trips and clear errors on corrupt or truncated files."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from agem.data import DatasetError, read_idx, write_idx


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([0, 9, 3], dtype=np.uint8),
        np.array([[-5, 7]], dtype=np.int16),
        np.array([1, -2, 3_000_000], dtype=np.int32),
        np.array([[0.5, -1.25]], dtype=np.float32),
        np.array([1e-300, 2.5], dtype=np.float64),
        np.array([-128, 127], dtype=np.int8),
    ],
)
def test_round_trip(tmp_path, name, array):
    path = write_idx(tmp_path / name, array)
    back = read_idx(path)
    assert back.dtype == array.dtype.newbyteorder("=")
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_gzip_detected_by_content_not_name(tmp_path):
    a = np.arange(10, dtype=np.uint8)
    path = write_idx(tmp_path / "plain-name", a, compress=True)
    with open(path, "rb") as f:
        assert f.read(2) == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(path), a)


def test_mnist_style_header_layout(tmp_path):
    path = write_idx(tmp_path / "x", np.zeros((3, 28, 28), dtype=np.uint8))
    raw = path.read_bytes()
    assert struct.unpack(">IIII", raw[:16]) == (0x00000803, 3, 28, 28)
    assert len(raw) == 16 + 3 * 784


def test_bad_magic_is_a_clear_error(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x12\x34\x08\x01" + struct.pack(">I", 2) + b"\x00\x01")
    with pytest.raises(DatasetError, match="bad magic number"):
        read_idx(path)


def test_unknown_type_code_is_rejected(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"\x00\x01")
    with pytest.raises(DatasetError, match="not an IDX file"):
        read_idx(path)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_data_is_a_clear_error(tmp_path, compress):
    full = tmp_path / "full"
    write_idx(full, np.arange(100, dtype=np.uint8).reshape(10, 10))
    raw = full.read_bytes()[:-7]
    path = tmp_path / "cut"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(path)


def test_truncated_gzip_stream_is_a_clear_error(tmp_path):
    path = write_idx(tmp_path / "x.gz", np.arange(4000, dtype=np.uint8))
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        read_idx(path)


def test_corrupt_gzip_body_is_a_clear_error(tmp_path):
    path = write_idx(tmp_path / "x.gz", np.arange(4000, dtype=np.uint8) % 7)
    blob = bytearray(path.read_bytes())
    for i in range(20, 40):
        blob[i] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(DatasetError, match="corrupt"):
        read_idx(path)


def test_truncated_header_is_a_clear_error(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(path)


def test_trailing_bytes_are_rejected(tmp_path):
    path = write_idx(tmp_path / "x", np.arange(5, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        read_idx(path)


def test_huge_header_fails_before_allocating(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"\x00\x00\x08\x02" + struct.pack(">II", 2**31, 2**31) + b"\x00" * 8)
    with pytest.raises(DatasetError, match="header announces"):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


def test_write_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(TypeError, match="dtype"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.uint16))
