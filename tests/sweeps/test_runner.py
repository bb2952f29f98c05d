"""`agem sweep` end to end with real processes: the local engine, a real Ray cluster
(`ray start --head`, or the one at $RAY_ADDRESS), and SIGKILL of the sweep mid-run
followed by a re-run that ends with the summary of an uninterrupted sweep."""

from __future__ import annotations

import csv
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.runs import assert_no_process_mentions

pytestmark = pytest.mark.slow

GRID = """
[base]
benchmark = "permuted_digits"
n_experiences = {n}
hidden_sizes = [32]
epochs = {epochs}
lca_beta = 3
patterns_per_experience = 20
sample_size = 10
[grid]
strategy = ["naive", "agem"]
seed = [0, 1]
"""
NAMES = ["strategy-naive_seed-0", "strategy-naive_seed-1", "strategy-agem_seed-0"]
NAMES.append("strategy-agem_seed-1")


def _spec(tmp_path: Path, *, n: int = 2, epochs: int = 1) -> Path:
    path = tmp_path / f"spec-{n}-{epochs}.toml"
    path.write_text(GRID.format(n=n, epochs=epochs))
    return path


def _sweep(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agem", "sweep", *args, "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _metrics(folder: Path) -> list[dict[str, str]]:
    """summary.csv without the timing columns (they differ between two sweeps)."""
    with open(folder / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: v for k, v in row.items() if not k.startswith("train_s")} for row in rows]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Ray cluster: $RAY_ADDRESS when set, else `ray start --head --block` here
    with token authentication (a fresh token in the environment, which the sweeps this
    module starts inherit), stopped at teardown by signalling that one process."""
    pytest.importorskip("ray")
    if os.environ.get("RAY_ADDRESS"):
        yield os.environ["RAY_ADDRESS"]
        return
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    port = _free_port()
    ray = Path(sys.executable).with_name("ray")
    command = [str(ray) if ray.exists() else "ray", "start", "--head", "--block"]
    command += ["--port", str(port), "--num-cpus", "2", "--include-dashboard=false"]
    command += ["--ray-client-server-port", str(_free_port()), "--disable-usage-stats"]
    command += ["--dashboard-agent-listen-port", str(_free_port())]
    log = tmp_path_factory.mktemp("ray") / "ray.log"
    with open(log, "wb") as handle:
        head = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start failed: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _check_complete_sweep(out: Path, result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr + result.stdout
    progress = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert len(progress) == 4 and progress[-1].startswith("[4/4] ")
    assert all(" A_T=" in line for line in progress)
    for name in NAMES:
        results = json.loads((out / name / "results.json").read_text())
        assert results.get("status", "complete") == "complete" and "A_T" in results
    rows = _metrics(out)
    assert [(r["strategy"], r["seeds"]) for r in rows] == [("naive", "2"), ("agem", "2")]
    assert (out / "summary.md").read_text().startswith("| strategy | seeds | A_T |")
    assert (out / "summary.png").stat().st_size > 1000


def test_local_sweep_end_to_end_and_rerun_skips(tmp_path: Path) -> None:
    out = tmp_path / "local"
    result = _sweep(str(_spec(tmp_path)), "--out", str(out), "--workers", "2")
    _check_complete_sweep(out, result)
    first = _metrics(out)
    again = _sweep(str(_spec(tmp_path)), "--out", str(out), "--workers", "2")
    assert again.returncode == 0 and "4 of 4 runs already finished" in again.stdout
    assert "[1/4]" not in again.stdout and _metrics(out) == first
    compare = subprocess.run(
        [sys.executable, "-m", "agem", "compare", str(out), "--no-plot", "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert compare.returncode == 0, compare.stderr
    lines = compare.stdout.splitlines()
    assert len(lines) == 3
    assert {line.split(",")[:3][0] for line in lines[1:]} == {"naive", "agem"}
    assert all(line.split(",")[1:3] == ["permuted_digits", "2"] for line in lines[1:])


def test_ray_sweep_end_to_end_on_a_cluster(tmp_path: Path, ray_address: str) -> None:
    out = tmp_path / "ray"
    args = [str(_spec(tmp_path)), "--out", str(out), "--engine", "ray"]
    result = _sweep(*args, "--ray-address", ray_address, "--workers", "2")
    _check_complete_sweep(out, result)
    local = tmp_path / "local"
    _check_complete_sweep(local, _sweep(str(_spec(tmp_path)), "--out", str(local)))
    assert _metrics(out) == _metrics(local)


def _kill_mid_run(command: list[str], out: Path) -> list[str]:
    """Start the sweep, SIGKILL it once a run is part-way (a checkpoint written, not
    complete), check that none of its runs outlives it; return the part-way runs."""
    sweep = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            if sweep.poll() is not None:
                pytest.fail("the sweep finished before it could be killed: make runs longer")
            partway = []
            for name in NAMES:
                try:
                    results = json.loads((out / name / "results.json").read_text())
                except (OSError, ValueError):
                    continue
                rows = len(results.get("accuracy_matrix") or [])
                if results.get("status") == "running" and 1 <= rows:
                    partway.append(name)
            if partway:
                break
            time.sleep(0.1)
        else:
            pytest.fail("no run got part-way")
    finally:
        sweep.kill()
        sweep.wait()
    assert_no_process_mentions(out)
    return partway


def _kill_and_rerun(tmp_path: Path, engine: list[str]) -> None:
    spec = _spec(tmp_path, n=4, epochs=25)
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "agem", "sweep", str(spec), "--out", str(out), *engine]
    partway = _kill_mid_run([*command, "--threads", "1"], out)
    resumed = _sweep(str(spec), "--out", str(out), *engine, timeout=400)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    for name in partway:  # continued from its checkpoint, not started again
        assert f"$ agem run --resume {out / name} " in (out / "logs" / f"{name}.log").read_text()
    reference = tmp_path / "uninterrupted"
    plain = _sweep(str(spec), "--out", str(reference), *engine, timeout=400)
    assert plain.returncode == 0, plain.stderr
    assert _metrics(out) == _metrics(reference)
    for name in NAMES:
        killed = json.loads((out / name / "results.json").read_text())
        whole = json.loads((reference / name / "results.json").read_text())
        assert killed["accuracy_matrix"] == whole["accuracy_matrix"]


def test_local_sweep_killed_and_rerun_ends_like_an_uninterrupted_one(tmp_path: Path) -> None:
    _kill_and_rerun(tmp_path, ["--workers", "2"])


def test_ray_sweep_killed_and_rerun_ends_like_an_uninterrupted_one(
    tmp_path: Path, ray_address: str
) -> None:
    _kill_and_rerun(tmp_path, ["--engine", "ray", "--ray-address", ray_address, "--workers", "2"])


def test_runs_choose_their_threads_within_their_share_of_the_cores(tmp_path: Path) -> None:
    """Without --threads, each run applies its own rule (one thread for a small MLP) with
    torch's default capped at its share of the cores, instead of a forced thread count."""
    spec = tmp_path / "one.toml"
    spec.write_text(GRID.format(n=1, epochs=1).replace('["naive", "agem"]', '["naive"]'))
    out = tmp_path / "sweep"
    done = subprocess.run(
        [sys.executable, "-m", "agem", "sweep", str(spec), "--out", str(out), "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    for seed in (0, 1):
        config = json.loads((out / f"seed-{seed}" / "config.json").read_text())
        assert config["environment"]["threads"] == 1
        log = (out / "logs" / f"seed-{seed}.log").read_text()
        assert "--threads" not in log.splitlines()[0]
