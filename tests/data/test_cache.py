"""The decoded-dataset cache: decoded once, checked against the sources, never a partial
or corrupt cache used, written atomically, kept out of read-only and system folders."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from agem.atomic import PAUSE_VARIABLE
from agem.data import DATASETS, load
from agem.data.cache import CACHE_VARIABLE, FOLDER, cache_folder, cached, clear_memo
from tests.data.test_catalog import write_mnist
from tests.helpers.runs import env, wait_for

KEY = "toy"


def _arrays(seed: int = 0):
    rng = np.random.default_rng(seed)
    x_tr = rng.integers(0, 256, (12, 4, 4), dtype=np.uint8)
    x_te = rng.integers(0, 256, (6, 4, 4), dtype=np.uint8)
    return (x_tr, np.arange(12, dtype=np.int64) % 3), (x_te, np.arange(6, dtype=np.int64) % 3)


class Decoder:
    """A decode function that counts its calls and decodes the source file's bytes."""

    def __init__(self, source):
        self.source = source
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return _arrays(self.source.read_bytes()[0])


def _equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip((*a[0], *a[1]), (*b[0], *b[1]), strict=True))


@pytest.fixture
def source(tmp_path, monkeypatch):
    """A one-file source in a writable folder, its cache beside it; a clean memo."""
    monkeypatch.delenv(CACHE_VARIABLE, raising=False)
    clear_memo()
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "toy.bin"
    path.write_bytes(bytes([1]) * 64)
    yield path
    clear_memo()


def test_decoded_once_then_read_back_in_this_and_another_process(source):
    decode = Decoder(source)
    first = cached(KEY, [source], decode)
    assert decode.calls == 1 and _equal(first, _arrays(1))
    assert (source.parent / FOLDER / f"{KEY}.json").is_file()
    again = cached(KEY, [source], decode)  # the memo
    clear_memo()
    fresh = cached(KEY, [source], decode)  # the files, as another process reads them
    assert decode.calls == 1
    assert _equal(again, first) and _equal(fresh, first)
    assert isinstance(fresh[0][0], np.memmap)


def test_arrays_returned_are_the_callers_own(source):
    decode = Decoder(source)
    cached(KEY, [source], decode)
    for _ in range(2):  # from the memo, then from the files
        (x_tr, _), _ = cached(KEY, [source], decode)
        x_tr[:] = 0  # copy-on-write: neither the file nor a later call sees it
        clear_memo()
    (x_tr, _), _ = cached(KEY, [source], decode)
    assert decode.calls == 1 and np.array_equal(x_tr, _arrays(1)[0][0])


def test_changed_source_is_decoded_again(source):
    os.utime(source, ns=(10**18, 10**18))  # long before its decoding: not hashed again
    decode = Decoder(source)
    cached(KEY, [source], decode)
    cached(KEY, [source], decode)  # remembered in this process
    before = source.stat()
    source.write_bytes(bytes([2]) * 64)  # same size
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the same time
    out = cached(KEY, [source], decode)
    assert decode.calls == 2 and _equal(out, _arrays(2))
    clear_memo()
    assert _equal(cached(KEY, [source], decode), _arrays(2)) and decode.calls == 2


def test_touched_but_unchanged_source_keeps_its_cache(source):
    decode = Decoder(source)
    cached(KEY, [source], decode)
    os.utime(source, ns=(0, 10**18))
    clear_memo()
    cached(KEY, [source], decode)
    assert decode.calls == 1
    recorded = json.loads((source.parent / FOLDER / f"{KEY}.json").read_text())["sources"]
    assert recorded[0]["stat"][1] == 10**18  # brought up to date: no hashing next time


@pytest.mark.parametrize(
    "damage",
    ["flip a byte", "truncate", "drop the manifest", "garbage manifest", "swap arrays"],
)
def test_corrupt_or_partial_cache_is_never_used(source, damage):
    decode = Decoder(source)
    cached(KEY, [source], decode)
    folder = source.parent / FOLDER
    array = folder / f"{KEY}.x_train.npy"
    if damage == "flip a byte":
        data = bytearray(array.read_bytes())
        data[-1] ^= 0xFF
        array.write_bytes(bytes(data))
    elif damage == "truncate":
        array.write_bytes(array.read_bytes()[:-5])
    elif damage == "drop the manifest":
        (folder / f"{KEY}.json").unlink()
    elif damage == "garbage manifest":
        (folder / f"{KEY}.json").write_text("{not json")
    else:
        (folder / f"{KEY}.x_test.npy").replace(array)
    clear_memo()
    out = cached(KEY, [source], decode)
    assert decode.calls == 2 and _equal(out, _arrays(1))
    clear_memo()
    cached(KEY, [source], decode)  # written again, whole
    assert decode.calls == 2


def test_a_cache_file_changed_in_this_process_is_checked_again(source):
    decode = Decoder(source)
    cached(KEY, [source], decode)
    cached(KEY, [source], decode)  # checked and remembered
    array = source.parent / FOLDER / f"{KEY}.y_train.npy"
    data = bytearray(array.read_bytes())
    data[-1] ^= 0x01
    array.write_bytes(bytes(data))
    out = cached(KEY, [source], decode)
    assert decode.calls == 2 and _equal(out, _arrays(1))


def test_a_planted_link_is_never_written_through(source, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    folder = source.parent / FOLDER
    folder.mkdir()
    (folder / f"{KEY}.x_train.npy").symlink_to(victim)
    decode = Decoder(source)
    out = cached(KEY, [source], decode)
    assert _equal(out, _arrays(1)) and victim.read_bytes() == b"keep"
    assert not (folder / f"{KEY}.json").exists()
    cached(KEY, [source], decode)  # kept in memory instead
    assert decode.calls == 1


def test_a_linked_cache_folder_is_not_used(source, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (source.parent / FOLDER).symlink_to(elsewhere)
    out = cached(KEY, [source], Decoder(source))
    assert _equal(out, _arrays(1)) and list(elsewhere.iterdir()) == []


_WRITER = """
import sys
import numpy as np
from agem.data.cache import cached
from tests.data.test_cache import Decoder
from pathlib import Path
cached("toy", [Path(sys.argv[1])], Decoder(Path(sys.argv[1])))
"""


def test_a_write_killed_before_its_manifest_leaves_no_usable_cache(source):
    folder = source.parent / FOLDER
    manifest = folder / f"{KEY}.json"
    pause = {PAUSE_VARIABLE: f"{KEY}.json:60", CACHE_VARIABLE: ""}
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(source)], env=env(**pause), cwd=os.getcwd()
    )
    try:
        wait_for(lambda: any(p.name.startswith(f".{KEY}.json.") for p in folder.glob(".*")))
        assert (folder / f"{KEY}.x_train.npy").is_file()  # the arrays are written first
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not manifest.exists()
    decode = Decoder(source)
    out = cached(KEY, [source], decode)
    assert decode.calls == 1 and _equal(out, _arrays(1)) and manifest.is_file()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_source_folder_uses_the_user_cache(source, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    source.parent.chmod(0o555)
    try:
        decode = Decoder(source)
        cached(KEY, [source], decode)
        clear_memo()
        cached(KEY, [source], decode)
    finally:
        source.parent.chmod(0o755)
    assert decode.calls == 1 and not (source.parent / FOLDER).exists()
    assert list((tmp_path / "xdg" / "agem" / "decoded").glob(f"{KEY}-*/{KEY}.json"))


def test_where_the_cache_goes(source, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_folder(KEY, [source]) == source.parent / FOLDER
    outside = cache_folder(KEY, [source], beside=False)
    assert outside is not None and outside.parent == tmp_path / "xdg" / "agem" / "decoded"
    assert outside.name.startswith(f"{KEY}-")
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path / "mine"))
    mine = cache_folder(KEY, [source])
    assert mine is not None and mine.parent == tmp_path / "mine"
    monkeypatch.setenv(CACHE_VARIABLE, "off")
    assert cache_folder(KEY, [source]) is None


def test_cache_off_still_decodes_once_per_process(source, monkeypatch):
    monkeypatch.setenv(CACHE_VARIABLE, "off")
    decode = Decoder(source)
    cached(KEY, [source], decode)
    (x_tr, _), _ = cached(KEY, [source], decode)
    x_tr[:] = 0
    assert decode.calls == 1 and not (source.parent / FOLDER).exists()
    assert _equal(cached(KEY, [source], decode), _arrays(1))


def test_load_caches_beside_a_data_folder_not_in_a_system_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    clear_memo()
    written = write_mnist(tmp_path / "root" / "fashion-mnist")
    system = tmp_path / "usr-share"
    write_mnist(system)
    source = dataclasses.replace(DATASETS["fashion-mnist"], system_dirs=(str(system),))
    monkeypatch.setitem(DATASETS, "fashion-mnist", source)
    (x_tr, y_tr), _ = load("fashion-mnist", root=tmp_path / "root", download=False)
    assert np.array_equal(x_tr, written[0]) and np.array_equal(y_tr, written[1])
    assert (tmp_path / "root" / "fashion-mnist" / FOLDER / "fashion-mnist.json").is_file()
    load("fashion-mnist", root=tmp_path / "empty", download=False)  # the system copy
    assert not (system / FOLDER).exists()
    assert list((tmp_path / "xdg" / "agem" / "decoded").glob("fashion-mnist-*/*.json"))
    clear_memo()
    (x_tr, _), _ = load("fashion-mnist", root=tmp_path / "root", download=False)
    assert isinstance(x_tr, np.memmap) and np.array_equal(x_tr, written[0])
