"""Helpers for the tests that drive `agem run` as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# tiny runs on the embedded data: about a second of training each
TINY = [
    "--n-experiences",
    "4",
    "--hidden-sizes",
    "32",
    "--threads",
    "1",
    "--patterns-per-experience",
    "20",
    "--sample-size",
    "10",
    "--mem-size",
    "50",
    "--log-every",
    "5",
    "--lca-test-size",
    "100",
]
METRICS = (
    "accuracy_matrix",
    "A_T",
    "F_T",
    "BWT",
    "FWT",
    "LCA_10",
    "initial_accuracies",
    "lca_curves",
)

# Run `agem` as user nobody: everything the run needs is imported (by a warm-up run)
# while still root, since the interpreter may live where nobody cannot read.
AS_NOBODY = """
import contextlib, io, os, sys, tempfile
from agem.cli.main import main
import agem.benchmarks.mnist, agem.data
with tempfile.TemporaryDirectory() as d, contextlib.redirect_stderr(io.StringIO()), \\
        contextlib.redirect_stdout(io.StringIO()):
    main(["run", "--n-experiences", "1", "--hidden-sizes", "4", "--threads", "1",
          "--lca-beta", "1", "--out", d + "/warm"])
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
sys.exit(main(sys.argv[1:]))
"""


def env(**extra: str) -> dict[str, str]:
    """The test's environment, with the worktree importable and `extra` set."""
    out = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    out["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [out.get("PYTHONPATH")])])
    out["MPLCONFIGDIR"] = out.get("MPLCONFIGDIR", "/tmp/agem-test-mpl")
    out.update(extra)
    return out


def agem(*args: str, as_nobody: bool = False, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m agem ARGS` to completion."""
    if as_nobody:
        cmd = [sys.executable, "-c", AS_NOBODY, *args]
    else:
        cmd = [sys.executable, "-m", "agem", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env(**extra), timeout=120)


def start(*args: str, **extra: str) -> subprocess.Popen[str]:
    """Start `python -m agem ARGS` in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "agem", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(**extra),
    )


def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    """Poll `predicate()` until it is true."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError("the condition did not come true in time")
        time.sleep(0.01)


def results(folder: Path) -> dict[str, Any]:
    data = json.loads((folder / "results.json").read_text())
    assert isinstance(data, dict)
    return data


def one_line_error(proc: Any, code: int = 2, *, after_training: bool = False) -> str:
    """The one error line of a run that failed with exit status `code`, checked: no
    traceback, and stderr holds only that line (or, `after_training`, progress lines
    and that line last)."""
    err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.read()
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == code, (proc.returncode, err)
    assert "Traceback" not in err, err
    if after_training:
        assert [line for line in lines if line.startswith("agem")] == lines[-1:], err
    else:
        assert len(lines) == 1, err
    return str(lines[-1])


def temp_files(folder: Path) -> list[str]:
    """Temporary files left in `folder`."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


def _processes_mentioning(text: str) -> list[int]:
    """The processes (but pytest) whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline and "pytest" not in cmdline:
                found.append(int(entry.name))
    return found


def assert_no_process_mentions(out: Path, *, within: float = 30.0) -> None:
    """Wait until no process names `out` (a killed sweep's runs die with it)."""
    deadline = time.monotonic() + within
    while _processes_mentioning(str(out)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_mentioning(str(out)) == [], "a run outlived the killed sweep"
