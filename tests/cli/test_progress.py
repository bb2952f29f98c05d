"""Progress off a terminal: `agem run` with its output to a pipe prints a progress line
every AGEM_PROGRESS_INTERVAL seconds (real process, real clock)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.helpers.runs import agem

LINE = re.compile(
    r"^progress: exp (\d+) \((\d+)/2\) epoch (\d+)/1 iteration (\d+)/(\d+)  "
    r"loss (\d+\.\d{4})  ETA (\d+ s|\d+ min \d\d s)$"
)


@pytest.mark.slow
def test_a_run_longer_than_the_interval_prints_progress_lines(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["run", "--strategy", "agem", "--n-experiences", "2", "--train-subset", "1000"]
    argv += ["--threads", "1", "--out", str(out)]
    began = time.monotonic()
    proc = agem(*argv, AGEM_PROGRESS_INTERVAL="0.1")  # training takes about 2 s
    seconds = time.monotonic() - began
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("progress:")]
    assert len(lines) >= 2, (seconds, proc.stderr)
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    numbers = [tuple(int(g) for g in m.groups()[:5]) for m in matches if m]
    assert all(per_epoch == 100 and 1 <= it <= 100 for *_, it, per_epoch in numbers)
    assert numbers == sorted(numbers)  # time goes forward
    assert all(float(m.group(6)) > 0 for m in matches if m)
    assert "progress:" not in proc.stdout  # stdout keeps the results only
