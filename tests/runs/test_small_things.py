"""Small promises of runs and sweeps: a resumed fleet member keeps `fleet_size`; an
interrupted `--no-checkpoint` run says a resume starts over; a complete run resumes on a
read-only folder; a second sweep on one folder is refused at once naming the holder;
diverged runs are final, not "to resume"."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from agem.sweeps.runner import SweepResult, describe_incomplete
from tests.helpers.runs import TINY, agem, env, one_line_error, results, start, wait_for

ONE = ["--n-experiences", "1", "--hidden-sizes", "8", "--threads", "1", "--lca-beta", "2"]


@pytest.mark.slow
def test_a_resumed_fleet_member_keeps_its_fleet_size(tmp_path: Path) -> None:
    out = tmp_path / "fleet"
    argv = ["run", *ONE, "--n-experiences", "2", "--fleet", "2", "--out", str(out)]
    assert agem(*argv).returncode == 0
    member = out / "seed0"
    data = results(member)
    assert data["fleet_size"] == 2
    data["status"] = "interrupted"
    (member / "results.json").write_text(json.dumps(data))
    assert agem("run", "--resume", str(member)).returncode == 0
    again = results(member)
    assert again["status"] == "complete" and again["fleet_size"] == 2


@pytest.mark.slow
def test_an_interrupted_run_without_checkpoints_says_a_resume_starts_over(tmp_path: Path) -> None:
    out = tmp_path / "run"
    pause = {"AGEM_TEST_PAUSE_BEFORE_RENAME": "results.json:1"}
    proc = start("run", *TINY, "--no-checkpoint", "--out", str(out), **pause)
    # during the results written after the first experience (a signal waits for them)
    wait_for(lambda: (out / "metrics.csv").exists() and bool(list(out.glob(".results*.tmp"))))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    line = err.strip().splitlines()[-1]
    assert "--no-checkpoint" in line and "start it over" in line
    assert "continue with" not in line


@pytest.mark.slow
def test_resume_of_a_complete_run_on_a_read_only_folder_reports_it() -> None:
    # a folder that user nobody can reach but not write (pytest's own folders are private)
    with tempfile.TemporaryDirectory() as top:
        Path(top).chmod(0o755)
        out = Path(top) / "run"
        assert agem("run", *ONE, "--out", str(out)).returncode == 0
        for path in [out, *out.iterdir()]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        proc = agem("run", "--resume", str(out), as_nobody=True)
        assert proc.returncode == 0, proc.stderr
        assert "A_T=" in proc.stdout and "Traceback" not in proc.stderr
        assert before == {p.name: p.read_bytes() for p in out.iterdir()}


@pytest.mark.slow
def test_a_second_sweep_on_one_folder_is_refused_at_once(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(
        '[base]\nbenchmark = "permuted_digits"\nn_experiences = 2\nhidden_sizes = [8]\n'
        "lca_beta = 2\n[grid]\nseed = [0, 1]\n"
    )
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "agem", "sweep", str(spec), "--out", str(out)]
    first = subprocess.Popen(
        [*command, "--threads", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(AGEM_TEST_PAUSE_BEFORE_RENAME="checkpoint.pt:1"),
    )
    try:
        wait_for(lambda: (out / "seed-0" / "config.json").exists(), timeout=120)
        holder = (out / ".lock").read_text().strip()
        second = agem("sweep", str(spec), "--out", str(out), "--threads", "1")
        line = one_line_error(second)
        assert "in use by a running sweep" in line and f"process {holder}" in line
        assert first.poll() is None  # the first one goes on
    finally:
        stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert "RUNNING" not in stdout
    assert all(results(out / f"seed-{s}")["status"] == "complete" for s in (0, 1))


def test_diverged_runs_are_not_offered_a_resume() -> None:
    result = SweepResult(rows=[], incomplete={"lr-100": "diverged"}, written=[])
    lines = describe_incomplete(result, "agem sweep s.toml --out d")
    assert any("final" in line for line in lines)
    assert not any("resume" in line for line in lines)
    mixed = SweepResult(rows=[], incomplete={"a": "diverged", "b": "interrupted"}, written=[])
    resume = [line for line in describe_incomplete(mixed, "cmd") if "resume" in line]
    assert len(resume) == 1 and "unfinished" in resume[0]
