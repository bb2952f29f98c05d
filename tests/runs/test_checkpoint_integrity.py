"""A checkpoint carries a SHA-256 record, verified before anything is loaded: one flipped
byte inside a tensor's data is refused in one line naming the checkpoint, a sweep reports
such a run as failed (never final), and a kill between the record and the checkpoint
never leaves a pair that loads wrongly or refuses a good resume."""

from __future__ import annotations

import json
import signal
import struct
import zipfile
from pathlib import Path

import pytest

from tests.helpers.runs import METRICS, TINY, agem, one_line_error, results, start, wait_for

SMALL = ["--n-experiences", "2", "--hidden-sizes", "16", "--threads", "1", "--lca-beta", "2"]
SWEEP_TOML = """
[base]
benchmark = "permuted_digits"
n_experiences = 2
hidden_sizes = [16]
lca_beta = 2
[grid]
seed = [0]
"""


def flip_tensor_byte(checkpoint: Path) -> None:
    """Flip one byte in the middle of the largest tensor's data (a zip entry stored
    uncompressed by torch.save), leaving the zip structure valid."""
    with zipfile.ZipFile(checkpoint) as archive:
        entries = [i for i in archive.infolist() if "/data/" in i.filename]
        largest = max(entries, key=lambda i: i.file_size)
    data = bytearray(checkpoint.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[largest.header_offset + 26 :][:4])
    start = largest.header_offset + 30 + name_len + extra_len
    data[start + largest.file_size // 2] ^= 0x01
    checkpoint.write_bytes(bytes(data))


def _interrupted(out: Path) -> None:
    """Make the complete run in `out` one to continue (its checkpoint is after the last
    experience, so a resume only has to load it and finish)."""
    data = results(out)
    data["status"] = "interrupted"
    (out / "results.json").write_text(json.dumps(data))


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"}


@pytest.mark.slow
def test_one_flipped_byte_is_refused_before_anything_is_loaded(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert agem("run", *SMALL, "--out", str(out)).returncode == 0
    _interrupted(out)
    flip_tensor_byte(out / "checkpoint.pt")
    with zipfile.ZipFile(out / "checkpoint.pt") as archive:
        assert archive.testzip() is not None  # torch itself would not notice: no CRC check
    before = _files(out)
    line = one_line_error(agem("run", "--resume", str(out)))
    assert str(out / "checkpoint.pt") in line and "integrity" in line
    assert _files(out) == before  # nothing changed: the status is still "interrupted"


@pytest.mark.slow
def test_an_intact_checkpoint_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert agem("run", *SMALL, "--out", str(out)).returncode == 0
    first = results(out)
    _interrupted(out)
    assert agem("run", "--resume", str(out)).returncode == 0
    again = results(out)
    assert again["status"] == "complete"
    keys = ("accuracy_matrix", "A_T", "F_T", "BWT", "FWT", "LCA_2", "lca_curves")
    assert {k: again[k] for k in keys} == {k: first[k] for k in keys}


@pytest.mark.slow
def test_a_missing_digest_record_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert agem("run", *SMALL, "--out", str(out)).returncode == 0
    _interrupted(out)
    (out / "checkpoint.sha256").unlink()
    line = one_line_error(agem("run", "--resume", str(out)))
    assert "checkpoint.pt" in line and "checkpoint.sha256" in line


@pytest.mark.slow
def test_a_sweep_reports_a_corrupt_checkpoint_as_failed_never_final(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(SWEEP_TOML)
    out = tmp_path / "sweep"
    argv = ["sweep", str(spec), "--out", str(out), "--threads", "1"]
    assert agem(*argv).returncode == 0
    run = out / "run"
    _interrupted(run)
    flip_tensor_byte(run / "checkpoint.pt")
    proc = agem(*argv)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "FAILED (exit 2" in proc.stdout
    assert "run  failed" in proc.stderr
    assert results(run)["status"] == "interrupted"  # not final: not complete, not diverged
    assert "integrity" in (out / "logs" / "run.log").read_text()


# ---- kills around the two renames (slow: real processes killed mid-write) ----------------
@pytest.mark.slow
@pytest.mark.parametrize("paused", ["checkpoint.sha256", "checkpoint.pt"])
def test_a_kill_between_record_and_checkpoint_resumes_like_an_uninterrupted_run(
    tmp_path: Path, paused: str
) -> None:
    reference = tmp_path / "reference"
    assert agem("run", *TINY, "--out", str(reference)).returncode == 0
    out = tmp_path / "run"
    proc = start("run", *TINY, "--out", str(out), AGEM_TEST_PAUSE_BEFORE_RENAME=f"{paused}:30")
    try:  # the second checkpoint's write is pending: the first one is in place
        wait_for(lambda: len(list(out.glob(f".{paused}.*.tmp"))) == 1 and _second(out))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    resumed = agem("run", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert {k: results(out)[k] for k in METRICS} == {k: results(reference)[k] for k in METRICS}


def _second(out: Path) -> bool:
    try:
        return bool(results(out)["experiences_done"] >= 1)
    except (OSError, ValueError, KeyError):
        return False
