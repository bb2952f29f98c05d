"""No file outside `--out` is ever written through a symbolic link planted in a run or a
sweep folder: the lock, results, checkpoint, logs, summaries and temporary files. Each
case is refused in one line with exit status 2, and the victim file is unchanged."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.helpers.runs import agem, one_line_error, results

SMALL = ["--n-experiences", "1", "--hidden-sizes", "8", "--threads", "1", "--lca-beta", "2"]
SWEEP_TOML = """
[base]
benchmark = "permuted_digits"
n_experiences = 1
hidden_sizes = [8]
lca_beta = 2
[grid]
seed = [0, 1]
"""


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "victim"
    path.parent.mkdir()
    path.write_text("precious\n")
    return path


def _unchanged(victim: Path) -> None:
    assert victim.read_text() == "precious\n"


# ---- agem run ----------------------------------------------------------------------------
@pytest.mark.slow
def test_a_new_run_refuses_a_symlinked_lock(tmp_path: Path, victim: Path) -> None:
    out = tmp_path / "x"
    out.mkdir()
    (out / ".lock").symlink_to(victim)
    line = one_line_error(agem("run", *SMALL, "--out", str(out)))
    assert ".lock" in line and "symbolic link" in line
    _unchanged(victim)
    assert sorted(p.name for p in out.iterdir()) == [".lock"]


@pytest.mark.slow
def test_overwrite_refuses_a_symlinked_lock(tmp_path: Path, victim: Path) -> None:
    out = tmp_path / "x"
    assert agem("run", *SMALL, "--out", str(out)).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".lock"}
    (out / ".lock").unlink()
    (out / ".lock").symlink_to(victim)
    line = one_line_error(agem("run", *SMALL, "--out", str(out), "--overwrite"))
    assert "symbolic link" in line
    _unchanged(victim)
    assert before == {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".lock"}


@pytest.mark.slow
@pytest.mark.parametrize("planted", [".lock", "results.json", "checkpoint.pt", "metrics.csv"])
def test_resume_refuses_a_folder_with_a_symlink(tmp_path: Path, victim: Path, planted: str) -> None:
    out = tmp_path / "x"
    assert agem("run", *SMALL, "--n-experiences", "2", "--out", str(out)).returncode == 0
    data = results(out)
    data["status"] = "interrupted"  # a run to continue
    (out / "results.json").write_text(__import__("json").dumps(data))
    if planted != "results.json":
        (out / planted).unlink()
        (out / planted).symlink_to(victim)
    else:
        moved = tmp_path / "outside" / "results.json"
        (out / planted).rename(moved)
        victim.write_text(moved.read_text())  # the link's target reads like the results
        (out / planted).symlink_to(victim)
    before = victim.read_bytes()
    line = one_line_error(agem("run", "--resume", str(out)))
    assert planted in line and "symbolic link" in line
    assert victim.read_bytes() == before


def test_a_symlinked_temporary_file_is_never_written_through(tmp_path: Path, victim: Path) -> None:
    from agem.atomic import write_text_atomic

    target = tmp_path / "results.json"
    (tmp_path / f".results.json.{os.getpid()}.tmp").symlink_to(victim)
    write_text_atomic(target, "new\n")
    assert target.read_text() == "new\n" and not target.is_symlink()
    _unchanged(victim)


def test_atomic_writes_and_appends_refuse_a_symlinked_target(tmp_path: Path, victim: Path) -> None:
    from agem.atomic import UnsafeFileError, open_append, write_text_atomic

    link = tmp_path / "summary.csv"
    link.symlink_to(victim)
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        write_text_atomic(link, "overwritten\n")
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        open_append(link)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeFileError, match="not a regular file"):
        open_append(fifo)
    _unchanged(victim)
    assert list(tmp_path.glob(".*.tmp")) == []


# ---- agem sweep --------------------------------------------------------------------------
def _sweep(tmp_path: Path, out: Path) -> object:
    spec = tmp_path / "spec.toml"
    spec.write_text(SWEEP_TOML)
    return agem("sweep", str(spec), "--out", str(out), "--threads", "1")


@pytest.mark.parametrize(
    "planted", [".lock", "logs/seed-0.log", "summary.csv", "summary.md", "sweep.toml"]
)
def test_a_sweep_refuses_a_symlink_in_its_folder(
    tmp_path: Path, victim: Path, planted: str
) -> None:
    out = tmp_path / "sweep"
    (out / "logs").mkdir(parents=True)
    if planted == "sweep.toml":  # a folder from this very sweep, with its spec a link
        victim.write_text(SWEEP_TOML)
    (out / planted).symlink_to(victim)
    before = victim.read_bytes()
    line = one_line_error(_sweep(tmp_path, out))
    assert "symbolic link" in line
    assert victim.read_bytes() == before
    assert not (out / "seed-0").exists() and not (out / "seed-1").exists()


@pytest.mark.slow
def test_a_sweep_run_with_a_symlinked_lock_fails_and_the_victim_is_unchanged(
    tmp_path: Path, victim: Path
) -> None:
    out = tmp_path / "sweep"
    (out / "seed-0").mkdir(parents=True)
    (out / "sweep.toml").write_text(SWEEP_TOML)  # this very sweep, one run folder planted
    (out / "seed-0" / ".lock").symlink_to(victim)
    proc = _sweep(tmp_path, out)
    assert proc.returncode == 1, proc.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in proc.stderr  # type: ignore[attr-defined]
    _unchanged(victim)
    log = (out / "logs" / "seed-0.log").read_text()
    assert "symbolic link" in log and "Traceback" not in log
    assert results(out / "seed-1")["status"] == "complete"


@pytest.mark.skipif(sys.platform != "linux", reason="O_NOFOLLOW semantics checked on Linux")
def test_the_run_lock_is_opened_without_following_links(tmp_path: Path, victim: Path) -> None:
    from agem.runs.folder import RunFolder, RunFolderError

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").symlink_to(victim)
    folder = RunFolder(tmp_path / "run")
    with pytest.raises(RunFolderError, match="symbolic link"):
        folder.lock()
    _unchanged(victim)


def test_a_dangling_lock_link_creates_nothing_outside(tmp_path: Path) -> None:
    out = tmp_path / "x"
    out.mkdir()
    target = tmp_path / "outside" / "created-by-agem"
    target.parent.mkdir()
    (out / ".lock").symlink_to(target)
    line = one_line_error(agem("run", *SMALL, "--out", str(out)))
    assert "symbolic link" in line
    assert not target.exists()
