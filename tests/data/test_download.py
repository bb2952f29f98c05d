"""Downloads against a local HTTP server the test starts (never the internet)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import threading
from typing import ClassVar

import numpy as np
import pytest

from agem.data import (
    DATASETS,
    DatasetError,
    DatasetNotFoundError,
    RemoteFile,
    data_root,
    download_file,
    fetch,
    load,
    write_idx,
)
from agem.data.download import download_first


class _Handler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    hits: ClassVar[list[str]] = []

    def do_GET(self):
        self.hits.append(self.path)
        if self.path.startswith("/short/"):  # announce more than is sent, then hang up
            body = self.files.get(self.path[len("/short") :], b"")
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + 1000))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A throwaway HTTP server on 127.0.0.1 serving `_Handler.files`."""
    _Handler.files = {}
    _Handler.hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_with_md5_and_sha256(server, tmp_path):
    url, handler = server
    body = bytes(range(256)) * 1000
    handler.files["/f.bin"] = body
    dest = tmp_path / "sub" / "f.bin"
    out = download_file(
        f"{url}/f.bin",
        dest,
        md5=_md5(body),
        sha256=hashlib.sha256(body).hexdigest(),
        progress=False,
    )
    assert out == dest and dest.read_bytes() == body
    assert _leftovers(dest.parent) == ["f.bin"]


def test_wrong_checksum_leaves_no_file(server, tmp_path):
    url, handler = server
    handler.files["/f.bin"] = b"payload"
    dest = tmp_path / "f.bin"
    with pytest.raises(DatasetError, match="md5 checksum mismatch"):
        download_file(f"{url}/f.bin", dest, md5="0" * 32, progress=False)
    assert _leftovers(tmp_path) == []


def test_connection_dropped_midway_leaves_no_partial_file(server, tmp_path):
    url, handler = server
    body = b"x" * 50_000
    handler.files["/f.bin"] = body
    dest = tmp_path / "f.bin"
    with pytest.raises(Exception) as info:
        download_file(f"{url}/short/f.bin", dest, md5=_md5(body), progress=False)
    assert not isinstance(info.value, AssertionError)
    assert _leftovers(tmp_path) == []


def test_existing_file_is_untouched_by_a_failed_download(server, tmp_path):
    url, handler = server
    handler.files["/f.bin"] = b"new content"
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"old")
    with pytest.raises(DatasetError):
        download_file(f"{url}/f.bin", dest, md5="1" * 32, progress=False)
    assert dest.read_bytes() == b"old"
    assert _leftovers(tmp_path) == ["f.bin"]


def test_http_404_is_an_oserror_and_leaves_nothing(server, tmp_path):
    url, _ = server
    with pytest.raises(OSError, match="404"):
        download_file(f"{url}/missing", tmp_path / "m", md5="0" * 32, progress=False)
    assert _leftovers(tmp_path) == []


def test_file_url(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello")
    dest = tmp_path / "out" / "dst.bin"
    download_file(src.as_uri(), dest, md5=_md5(b"hello"), progress=False)
    assert dest.read_bytes() == b"hello"


def test_checksum_is_required_and_validated(tmp_path):
    with pytest.raises(ValueError, match="md5 or a sha256"):
        download_file("file:///dev/null", tmp_path / "x")
    with pytest.raises(ValueError, match="32 hex digits"):
        download_file("file:///dev/null", tmp_path / "x", md5="abc")


def test_mirrors_are_tried_in_order(server, tmp_path):
    url, handler = server
    handler.files["/b/f"] = b"data"
    dest = download_first(
        [f"{url}/a/f", f"{url}/b/f"], tmp_path / "f", md5=_md5(b"data"), progress=False
    )
    assert dest.read_bytes() == b"data"
    assert handler.hits == ["/a/f", "/b/f"]
    with pytest.raises(DatasetError, match=r"could not download f2: .*/c/f: .*404"):
        download_first([f"{url}/c/f"], tmp_path / "f2", md5="0" * 32, progress=False)


def _serve_tiny_mnist(handler, n_train=20, n_test=10):
    """IDX .gz files in the handler; returns (RemoteFiles, arrays)."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(n_test) % 10).astype(np.uint8),
    }
    import tempfile
    from pathlib import Path

    files = []
    with tempfile.TemporaryDirectory() as d:
        for name, a in arrays.items():
            blob = write_idx(Path(d) / name, a).read_bytes()
            handler.files[f"/mnist/{name}"] = blob
            files.append(RemoteFile(name, md5=_md5(blob)))
    return tuple(files), arrays


def test_fetch_downloads_into_root_then_finds_it_offline(server, tmp_path, monkeypatch):
    url, handler = server
    files, arrays = _serve_tiny_mnist(handler)
    source = dataclasses.replace(DATASETS["mnist"], files=files, mirrors=(f"{url}/mnist/",))
    monkeypatch.setitem(DATASETS, "mnist", source)
    where = fetch("mnist", root=tmp_path, progress=False)
    assert where == tmp_path / "mnist"
    assert sorted(p.name for p in where.iterdir()) == sorted(f.name for f in files)
    n_hits = len(handler.hits)
    (x_tr, y_tr), (x_te, y_te) = load("mnist", root=tmp_path, download=False)
    assert len(handler.hits) == n_hits  # found on disk: no second download
    np.testing.assert_array_equal(x_tr, arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(y_te, arrays["t10k-labels-idx1-ubyte.gz"])
    assert x_te.shape == (10, 28, 28) and y_tr.dtype == np.int64


def test_fetch_with_a_bad_checksum_leaves_no_file(server, tmp_path, monkeypatch):
    url, handler = server
    files, _ = _serve_tiny_mnist(handler)
    files = (RemoteFile(files[0].name, md5="f" * 32), *files[1:])
    source = dataclasses.replace(DATASETS["mnist"], files=files, mirrors=(f"{url}/mnist/",))
    monkeypatch.setitem(DATASETS, "mnist", source)
    with pytest.raises(DatasetNotFoundError, match="checksum mismatch"):
        fetch("mnist", root=tmp_path, progress=False)
    assert _leftovers(tmp_path / "mnist") == []


def test_download_false_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(
        DATASETS, "fashion-mnist", dataclasses.replace(DATASETS["fashion-mnist"], system_dirs=())
    )
    with pytest.raises(DatasetNotFoundError) as info:
        fetch("fashion-mnist", root=tmp_path, download=False)
    msg = str(info.value)
    assert "\n" not in msg
    assert "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path / "fashion-mnist") in msg and str(tmp_path / "FashionMNIST/raw") in msg
    assert "download=False" in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert isinstance(info.value, FileNotFoundError)
    assert not (tmp_path / "fashion-mnist").exists()


def test_no_network_is_one_clear_error(server, tmp_path, monkeypatch):
    url, _ = server  # every file is a 404 here: the same path as an unreachable host
    source = dataclasses.replace(
        DATASETS["fashion-mnist"], system_dirs=(), mirrors=(f"{url}/nothing/",)
    )
    monkeypatch.setitem(DATASETS, "fashion-mnist", source)
    with pytest.raises(DatasetNotFoundError) as info:
        load("fashion-mnist", root=tmp_path, progress=False)
    msg = str(info.value)
    assert "Download failed" in msg and "404" in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "Looked in:" in msg
    assert _leftovers(tmp_path / "fashion-mnist") == []


def test_unreachable_host_fails_fast_with_the_same_error(tmp_path, monkeypatch):
    source = dataclasses.replace(
        DATASETS["cifar10"], mirrors=("http://127.0.0.1:9/",)
    )  # port 9 (discard): connection refused on loopback
    monkeypatch.setitem(DATASETS, "cifar10", source)
    with pytest.raises(DatasetNotFoundError, match=r"CIFAR-10 not found.*cifar-10-python\.tar\.gz"):
        fetch("cifar10", root=tmp_path, progress=False)


def test_data_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("AGEM_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("AGEM_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".cache" / "agem"
    with pytest.raises(TypeError, match="root"):
        data_root(3)  # type: ignore[arg-type]
