"""`agem.exiting.exit_now` ends a real process as a normal exit would for everything a
program can observe: its exit status, its buffered output, its non-daemon threads and
thread pools finished, its `atexit` functions and `weakref.finalize` callbacks run; inside
`exit_by_raising` it raises `SystemExit` instead, as `sys.exit` would."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agem.exiting import exit_by_raising, exit_now


def test_exit_now_keeps_what_a_normal_exit_does(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import atexit, sys, threading, time, weakref
        from concurrent.futures import ThreadPoolExecutor
        from pathlib import Path
        from agem.exiting import exit_now

        out = Path({str(tmp_path)!r})

        def late(name):
            time.sleep(0.3)
            (out / name).write_text("done")

        threading.Thread(target=late, args=("thread",)).start()
        ThreadPoolExecutor(1).submit(late, "pool")
        atexit.register(lambda: (out / "atexit").write_text("done"))

        class Held:
            pass

        held = Held()
        weakref.finalize(held, lambda: (out / "finalize").write_text("done"))
        sys.stdout.write("buffered, no newline")
        sys.stderr.write("to stderr")
        exit_now(3)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 3
    assert done.stdout == "buffered, no newline"
    assert done.stderr == "to stderr"
    for name in ("thread", "pool", "atexit", "finalize"):
        assert (tmp_path / name).read_text() == "done", name


def test_inside_exit_by_raising_it_raises_system_exit() -> None:
    with exit_by_raising(), pytest.raises(SystemExit) as raised:
        with exit_by_raising():
            pass  # a nested block closing leaves the outer one in force
        exit_now(4)
    assert raised.value.code == 4
