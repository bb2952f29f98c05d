"""Kill `agem run` and resume it: the run ends with the same metrics and logs as one that
was never interrupted (SIGKILL at random moments and while a checkpoint is being written,
SIGINT, SIGTERM), on real processes and real files."""

from __future__ import annotations

import csv
import fcntl
import os
import random
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agem.cli.main import main
from tests.helpers.runs import (
    METRICS,
    TINY,
    agem,
    one_line_error,
    results,
    start,
    temp_files,
    wait_for,
)

PAUSE = (
    "checkpoint.pt:0.5"  # every checkpoint write pauses between the temporary file and the rename
)


@pytest.fixture(scope="module")
def baselines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Uninterrupted runs, by strategy (made on first use)."""
    root = tmp_path_factory.mktemp("baselines")
    made: dict[str, Path] = {}

    class Lazy(dict):  # type: ignore[type-arg]
        def __missing__(self, strategy: str) -> Path:
            out = root / strategy
            assert main(["run", *TINY, "--strategy", strategy, "--out", str(out)]) == 0
            made[strategy] = out
            self[strategy] = out
            return out

    return Lazy()


def _csv_rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "metrics.csv").open(newline="") as f:
        return [r for r in csv.DictReader(f) if not r["name"].startswith("time/")]


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(folder))
    mux.Reload()
    out: dict[str, list[tuple[int, float]]] = {}
    for run in mux.Runs():
        acc = mux.GetAccumulator(run)
        for tag in acc.Tags()["scalars"]:
            if not tag.startswith("time/"):
                out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return {tag: sorted(v) for tag, v in out.items()}


def assert_same_run(resumed: Path, baseline: Path, *, logs: bool = True) -> None:
    """Same status, metrics, training records and (without timings) metrics.csv."""
    a, b = results(resumed), results(baseline)
    assert a["status"] == b["status"] == "complete"
    for key in METRICS:
        assert a[key] == b[key], key
    strip = [{k: v for k, v in r.items()} for r in a["training"]]
    assert strip == b["training"]
    assert temp_files(resumed) == []
    if logs:
        assert _csv_rows(resumed) == _csv_rows(baseline)


def _kill_during_second_checkpoint(out: Path, strategy: str) -> None:
    proc = start(
        "run", *TINY, "--strategy", strategy, "--out", str(out), AGEM_TEST_PAUSE_BEFORE_RENAME=PAUSE
    )
    wait_for(lambda: (out / "checkpoint.pt").exists() and bool(temp_files(out)))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["agem", "replay"])
def test_sigkill_while_a_checkpoint_is_written_then_resume(
    strategy: str, tmp_path: Path, baselines: dict[str, Path]
) -> None:
    out = tmp_path / "run"
    _kill_during_second_checkpoint(out, strategy)
    # the folder left by SIGKILL: status running, the old checkpoint, a temporary file,
    # and no live process holding the lock
    assert results(out)["status"] == "running"
    assert temp_files(out)
    fd = os.open(out / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # would raise if it were held
    os.close(fd)

    proc = agem("run", "--resume", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "A_T=" in proc.stdout
    assert_same_run(out, baselines[strategy])
    if strategy == "agem":
        assert _scalars(out) == _scalars(baselines[strategy])


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_write_interrupted_then_resume(
    sig: signal.Signals, code: int, tmp_path: Path, baselines: dict[str, Path]
) -> None:
    out = tmp_path / "run"
    proc = start("run", *TINY, "--out", str(out), AGEM_TEST_PAUSE_BEFORE_RENAME=PAUSE)
    wait_for(lambda: (out / "checkpoint.pt").exists())
    proc.send_signal(sig)
    proc.wait(60)
    line = one_line_error(proc, code, after_training=True)
    assert f"agem run --resume {out}" in line and signal.Signals(sig).name in line
    done = results(out)
    assert done["status"] == "interrupted" and 1 <= done["experiences_done"] < 4
    assert temp_files(out) == []

    resumed = agem("run", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(out, baselines["agem"])


def _random_kills(out: Path, strategy: str, rng: random.Random, extra: list[str]) -> int:
    """SIGKILL the run (and then its resumptions) at random moments until it completes.

    Each process is killed a random time after it has written results.json (so that the
    kill lands while it trains, evaluates or writes, not while Python starts up). The
    window grows by half after every kill, so that on a loaded machine, where a process
    may need longer than a second to reach its next checkpoint, the run still finishes.
    """
    kills = 0
    window = 1.0
    args: list[str] = ["run", *TINY, "--strategy", strategy, *extra, "--out", str(out)]
    while True:
        results_file = out / "results.json"
        before = results_file.stat().st_mtime_ns if results_file.exists() else None
        proc = start(*args)

        def written() -> bool:
            if proc.poll() is not None:
                return True
            return results_file.exists() and results_file.stat().st_mtime_ns != before

        wait_for(written)
        try:
            proc.wait(rng.uniform(0.0, window))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            kills += 1
            window *= 1.5
        proc.communicate()
        if proc.returncode == 0:
            return kills
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        args = ["run", "--resume", str(out)]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("strategy", "extra"),
    [
        ("agem", []),
        ("ewc", []),
        ("gem", []),
        ("agem", ["--optimizer", "adam", "--lr", "0.001"]),
        ("replay", ["--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.01"]),
    ],
)
def test_sigkill_at_random_moments_then_resume(
    strategy: str, extra: list[str], tmp_path: Path
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    baseline = tmp_path / "baseline"
    assert main(["run", *TINY, "--strategy", strategy, *extra, "--out", str(baseline)]) == 0
    total = 0
    for attempt in range(3):
        total += _random_kills(tmp_path / f"killed{attempt}", strategy, rng, extra)
        assert_same_run(tmp_path / f"killed{attempt}", baseline)
    assert total >= 1, f"no kill landed (seed {seed})"


def test_resume_of_a_complete_run_prints_it_without_training(
    tmp_path: Path, baselines: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = baselines["agem"]
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != ".lock"}
    assert main(["run", "--resume", str(out)]) == 0
    assert "A_T=" in capsys.readouterr().out
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != ".lock"}
    assert before == after


def _resume_error(out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    capsys.readouterr()  # only the resume's own output (a baseline may have just been made)
    assert main(["run", "--resume", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_resume_refuses_a_folder_locked_by_a_live_run(
    tmp_path: Path, baselines: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    _kill_during_second_checkpoint(out, "agem")
    fd = os.open(out / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # this test process is the live run
    try:
        assert "in use by a live run" in _resume_error(out, capsys)
        assert main(["run", *TINY, "--out", str(out), "--overwrite"]) == 2
        assert "in use by a live run" in capsys.readouterr().err
    finally:
        os.close(fd)
    assert results(out)["status"] == "running"


def test_resume_takes_only_threads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["run", *TINY, "--n-experiences", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert "only --threads" in _resume_error(out, capsys, "--lr", "0.5")
    assert "only --threads" in _resume_error(out, capsys, "--overwrite")
    assert "no such run folder" in _resume_error(tmp_path / "nothing", capsys)
    (tmp_path / "empty").mkdir()
    assert "not a run folder" in _resume_error(tmp_path / "empty", capsys)


def _swap_checkpoint(source: Path, target: Path) -> dict[str, Any]:
    """Put `source`'s checkpoint into `target` (interrupted); return target's file times."""
    for name in ("checkpoint.pt", "checkpoint.sha256"):
        (target / name).write_bytes((source / name).read_bytes())
    text = (target / "results.json").read_text().replace('"complete"', '"interrupted"', 1)
    (target / "results.json").write_text(text)
    return {p.name: p.read_bytes() for p in target.iterdir() if p.name != ".lock"}


def test_a_checkpoint_of_another_strategy_is_refused_before_anything_changes(
    tmp_path: Path, baselines: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "replay"
    assert main(["run", *TINY, "--strategy", "replay", "--out", str(out)]) == 0
    capsys.readouterr()
    before = _swap_checkpoint(baselines["agem"], out)
    line = _resume_error(out, capsys)
    assert "another configuration" in line and "--strategy" in line
    assert before == {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".lock"}


def test_a_corrupt_checkpoint_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["run", *TINY, "--n-experiences", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    data = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    (out / "results.json").write_text('{"status": "running"}')
    assert "fails its integrity check" in _resume_error(out, capsys)
