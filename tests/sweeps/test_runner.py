"""`agem sweep` end to end with real processes: the local engine, a real Ray cluster
(`ray start --head`, or the one at $RAY_ADDRESS), SIGKILL of the sweep mid-run followed
by a re-run that ends with the summary of an uninterrupted sweep, and SIGKILL of one warm
worker mid-run, which the other runs and the summary do not notice."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.runs import assert_no_process_mentions

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray_cluster")]

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


def _sweep(
    *args: str,
    timeout: float = 240,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agem", "sweep", *args, "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
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
def ray_token() -> Iterator[None]:
    """Token authentication for this module's Ray heads: a fresh token in the
    environment, which the sweeps this module starts inherit."""
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextlib.contextmanager
def _ray_head(ray: list[str], log: Path, *, cwd: Path | None = None) -> Iterator[str]:
    """`ray start --head --block` (`ray` is the command that runs Ray's CLI) with 2 CPUs
    on free ports; its address; stopped at the end by signalling that one process."""
    port = _free_port()
    command = [*ray, "start", "--head", "--block"]
    command += ["--port", str(port), "--num-cpus", "2", "--include-dashboard=false"]
    command += ["--ray-client-server-port", str(_free_port()), "--disable-usage-stats"]
    command += ["--dashboard-agent-listen-port", str(_free_port())]
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} if cwd else None
    with open(log, "wb") as handle:
        head = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, cwd=cwd, env=environ
        )
    try:
        deadline = time.monotonic() + 90
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


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory: pytest.TempPathFactory, ray_token: None) -> Iterator[str]:
    """A real Ray cluster: $RAY_ADDRESS when set, else `ray start --head` here."""
    pytest.importorskip("ray")
    if os.environ.get("RAY_ADDRESS"):
        yield os.environ["RAY_ADDRESS"]
        return
    ray = Path(sys.executable).with_name("ray")
    log = tmp_path_factory.mktemp("ray") / "ray.log"
    with _ray_head([str(ray) if ray.exists() else "ray"], log) as address:
        yield address


@pytest.fixture(scope="module")
def bare_ray_address(tmp_path_factory: pytest.TempPathFactory, ray_token: None) -> Iterator[str]:
    """A `ray start --head` cluster whose workers cannot import agem: its Python is a
    virtual environment that sees this one's packages (torch, Ray) but not the project
    folder (no editable install, no PYTHONPATH, started elsewhere)."""
    pytest.importorskip("ray")
    root = tmp_path_factory.mktemp("bare")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    python = str(root / "venv" / "bin" / "python")
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run([python, "-c", where], capture_output=True, text=True, check=True)
    (Path(site.stdout.strip()) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = "import ray, torch\ntry:\n import agem\nexcept ImportError: print('no agem')"
    seen = subprocess.run(
        [python, "-c", probe], capture_output=True, text=True, cwd=root, env=environ
    )
    assert seen.stdout.strip() == "no agem", seen.stdout + seen.stderr
    with _ray_head([python, "-m", "ray.scripts.scripts"], root / "ray.log", cwd=root) as address:
        yield address


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


@pytest.mark.parametrize("processes", ["cold", "warm"])
def test_ray_sweep_end_to_end_on_a_cluster(
    tmp_path: Path, ray_address: str, processes: str
) -> None:
    out = tmp_path / "ray"
    args = [str(_spec(tmp_path)), "--out", str(out), "--engine", "ray", "--processes", processes]
    result = _sweep(*args, "--ray-address", ray_address, "--workers", "2")
    _check_complete_sweep(out, result)
    local = tmp_path / "local"
    _check_complete_sweep(local, _sweep(str(_spec(tmp_path)), "--out", str(local)))
    assert _metrics(out) == _metrics(local)


def test_ray_sweep_on_a_local_instance_it_starts(tmp_path: Path, ray_token: None) -> None:
    """Without an address the sweep starts a local Ray instance with --workers CPUs, which
    lives until the sweep has ended (Ray's processes die with the thread that started
    them, so it must be the sweep's main thread)."""
    pytest.importorskip("ray")
    environ = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = tmp_path / "local-ray"
    result = _sweep(
        str(_spec(tmp_path)), "--out", str(out), "--engine", "ray", "--workers", "2", env=environ
    )
    _check_complete_sweep(out, result)


def test_ray_sweep_ships_agem_to_workers_that_cannot_import_it(
    tmp_path: Path, bare_ray_address: str
) -> None:
    """The sweep ships this agem with Ray's runtime environment: it runs on a cluster
    whose workers cannot import agem; told the nodes have it, it stops in one line
    saying how to install it. The sweep starts outside the project folder: Ray adds the
    driver's working directory to its workers' import path, which on one machine would
    let them import agem from a checkout."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = tmp_path / "shipped"
    args = [str(_spec(tmp_path)), "--engine", "ray", "--ray-address", bare_ray_address]
    result = _sweep(*args, "--out", str(out), "--workers", "2", env=environ, cwd=tmp_path)
    _check_complete_sweep(out, result)
    refused = _sweep(
        *args,
        *("--out", str(tmp_path / "installed"), "--ray-package", "installed"),
        env=environ,
        cwd=tmp_path,
    )
    assert refused.returncode == 2, refused.stderr + refused.stdout
    assert "workers cannot import agem" in refused.stderr
    assert "pip install -e '.[ray]'" in refused.stderr


def _partway(out: Path) -> list[str]:
    """The runs that are part-way: a checkpoint written, not complete."""
    partway = []
    for name in NAMES:
        try:
            results = json.loads((out / name / "results.json").read_text())
        except (OSError, ValueError):
            continue
        rows = len(results.get("accuracy_matrix") or [])
        if results.get("status") == "running" and 1 <= rows:
            partway.append(name)
    return partway


def _wait_partway(sweep: subprocess.Popen[str], out: Path) -> list[str]:
    deadline = time.monotonic() + 900  # a loaded machine trains slowly
    while time.monotonic() < deadline:
        if sweep.poll() is not None:
            pytest.fail("the sweep finished before it could be killed: make runs longer")
        partway = _partway(out)
        if partway:
            return partway
        time.sleep(0.1)
    pytest.fail("no run got part-way")


def _parent(pid: int) -> int | None:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def _descendants(pid: int) -> set[int]:
    """The processes below `pid` (its workers and their runs)."""
    parents = {
        int(e.name): _parent(int(e.name)) for e in Path("/proc").iterdir() if e.name.isdigit()
    }
    found: set[int] = set()
    todo = [pid]
    while todo:
        here = todo.pop()
        below = {child for child, parent in parents.items() if parent == here}
        todo += list(below - found)
        found |= below
    return found


def _alive(pid: int) -> bool:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _assert_all_gone(pids: set[int], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)], "a process outlived the sweep"


def _kill_mid_run(command: list[str], out: Path) -> list[str]:
    """Start the sweep, SIGKILL it once a run is part-way (a checkpoint written, not
    complete), check that none of its processes (workers, runs) outlives it; return the
    part-way runs."""
    sweep = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    below: set[int] = set()
    try:
        partway = _wait_partway(sweep, out)  # type: ignore[arg-type]
        below = _descendants(sweep.pid)
    finally:
        sweep.kill()
        sweep.wait()
    assert_no_process_mentions(out)
    if "ray" not in command:  # Ray's actors are the cluster's processes, not the sweep's
        assert below
        _assert_all_gone(below)
    return partway


def _kill_and_rerun(tmp_path: Path, engine: list[str]) -> None:
    spec = _spec(tmp_path, n=4, epochs=25)
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "agem", "sweep", str(spec), "--out", str(out), *engine]
    partway = _kill_mid_run([*command, "--threads", "1"], out)
    resumed = _sweep(str(spec), "--out", str(out), *engine, timeout=1500)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    for name in partway:  # continued from its checkpoint, not started again
        assert f"$ agem run --resume {out / name} " in (out / "logs" / f"{name}.log").read_text()
    reference = tmp_path / "uninterrupted"
    plain = _sweep(str(spec), "--out", str(reference), *engine, timeout=1500)
    assert plain.returncode == 0, plain.stderr
    assert _metrics(out) == _metrics(reference)
    for name in NAMES:
        killed = json.loads((out / name / "results.json").read_text())
        whole = json.loads((reference / name / "results.json").read_text())
        assert killed["accuracy_matrix"] == whole["accuracy_matrix"]


def test_local_sweep_killed_and_rerun_ends_like_an_uninterrupted_one(tmp_path: Path) -> None:
    _kill_and_rerun(tmp_path, ["--workers", "2"])


@pytest.mark.parametrize("processes", ["cold", "warm"])
def test_ray_sweep_killed_and_rerun_ends_like_an_uninterrupted_one(
    tmp_path: Path, ray_address: str, processes: str
) -> None:
    engine = ["--engine", "ray", "--ray-address", ray_address, "--processes", processes]
    _kill_and_rerun(tmp_path, [*engine, "--workers", "2"])


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


def _run_of_log(pid: int, logs: Path) -> str | None:
    """The run whose log is `pid`'s stdout, if any."""
    try:
        target = os.readlink(f"/proc/{pid}/fd/1")
    except OSError:
        return None
    path = Path(target)
    return path.stem if path.parent == logs else None


def test_sigkill_of_one_warm_worker_mid_run_spares_the_others_and_rerun_completes_it(
    tmp_path: Path,
) -> None:
    """SIGKILL the warm worker (the fork server) whose run is part-way: that run dies
    with it, the other runs and the sweep go on (a new worker takes the next runs), the
    summary holds every other run and names the killed one, and a re-run resumes it."""
    spec = _spec(tmp_path, n=4, epochs=25)
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "agem", "sweep", str(spec), "--out", str(out)]
    command += ["--workers", "2", "--threads", "1"]
    sweep = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim = worker = None
        deadline = time.monotonic() + 180
        while victim is None and time.monotonic() < deadline:
            partway = _wait_partway(sweep, out)
            for pid in _descendants(sweep.pid):
                name = _run_of_log(pid, out / "logs")
                if name in partway:
                    victim, worker, run = name, _parent(pid), pid
                    break
        assert victim is not None and worker is not None and worker != sweep.pid
        os.kill(worker, signal.SIGKILL)
        _assert_all_gone({worker, run})
        stdout, stderr = sweep.communicate(timeout=1500)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    assert sweep.returncode == 1, stderr
    lines = [line for line in stdout.splitlines() if line.startswith("[")]
    assert len(lines) == 4
    others = [name for name in NAMES if name != victim]
    killed = [line for line in lines if f" {victim} " in line]
    assert len(killed) == 1 and f"RUNNING (exit {-signal.SIGKILL}" in killed[0], stdout
    for name in others:
        assert json.loads((out / name / "results.json").read_text())["status"] == "complete"
        assert "--resume" not in (out / "logs" / f"{name}.log").read_text()
    assert victim in stderr and "re-run the same command" in stderr
    seeds = {(r["strategy"], r["seeds"]) for r in _metrics(out)}
    strategy = victim.split("_")[0].removeprefix("strategy-")
    assert seeds == {(strategy, "1"), *{(s, "2") for s in ("naive", "agem") if s != strategy}}
    rerun = _sweep(str(spec), "--out", str(out), "--workers", "2", timeout=1500)
    assert rerun.returncode == 0, rerun.stderr + rerun.stdout
    assert "3 of 4 runs already finished" in rerun.stdout
    assert f"$ agem run --resume {out / victim} " in (out / "logs" / f"{victim}.log").read_text()
    assert {(r["strategy"], r["seeds"]) for r in _metrics(out)} == {("naive", "2"), ("agem", "2")}
