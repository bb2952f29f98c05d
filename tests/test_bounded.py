"""Garbage input is one line and exit status 2, quickly: JSON nested 100,000 deep in
`agem compare` and in a sweep, `--config` naming /dev/zero, a FIFO or a huge file, and a
spec that is not a regular file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from agem.cli.main import main
from tests.helpers.runs import agem, one_line_error

DEEP = "[" * 100_000 + "]" * 100_000
SWEEP_TOML = """
[base]
benchmark = "permuted_digits"
n_experiences = 1
hidden_sizes = [8]
lca_beta = 2
[grid]
seed = [0]
"""


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_compare_refuses_results_nested_too_deeply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(DEEP)
    line = _error(capsys, ["compare", str(run), "--no-plot"])
    assert "results.json" in line and "nested too deeply" in line


def test_compare_refuses_a_config_nested_too_deeply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text('{"status": "complete"}')
    (run / "config.json").write_text(DEEP)
    assert "nested too deeply" in _error(capsys, ["compare", str(run), "--no-plot"])


@pytest.mark.slow
def test_a_sweep_reads_deeply_nested_results_without_a_traceback(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(SWEEP_TOML)
    out = tmp_path / "sweep"
    assert agem("sweep", str(spec), "--out", str(out), "--threads", "1").returncode == 0
    (out / "run" / "results.json").write_text(DEEP)
    proc = agem("sweep", str(spec), "--out", str(out), "--threads", "1")
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert "RecursionError" not in proc.stderr


@pytest.mark.parametrize("source", ["/dev/zero", "fifo", "huge"])
def test_config_that_is_not_a_small_regular_file_is_refused_quickly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str
) -> None:
    from agem.bounded import MAX_SMALL_FILE

    if source == "fifo":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)
    elif source == "huge":
        path = str(tmp_path / "huge.json")
        with open(path, "wb") as handle:
            handle.truncate(MAX_SMALL_FILE + 1)  # sparse: large, yet nothing to write
    else:
        path = source
    began = time.monotonic()
    line = _error(capsys, ["run", "--config", path, "--out", str(tmp_path / "run")])
    assert time.monotonic() - began < 20
    assert path in line and ("not a regular file" in line or "larger than" in line)
    assert not (tmp_path / "run").exists()


def test_config_dev_zero_as_a_process(tmp_path: Path) -> None:
    proc = agem("run", "--config", "/dev/zero", "--out", str(tmp_path / "run"))
    assert "/dev/zero is not a regular file" in one_line_error(proc)


def test_a_spec_that_is_a_fifo_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "spec.toml"
    os.mkfifo(fifo)
    line = _error(capsys, ["sweep", str(fifo), "--out", str(tmp_path / "out")])
    assert "not a regular file" in line
