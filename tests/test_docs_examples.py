"""Every ```python block in README.md and docs/*.md runs, so the examples cannot go stale.

The blocks of one file run in order in one fresh interpreter (a later block may use what
an earlier one defined), in a temporary folder, on one CPU thread. A block whose fence is
preceded by the line `<!-- doc-test: skip (reason) -->` is not run;
`<!-- doc-test: cuda -->` runs it only where CUDA is available.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
_MARK = re.compile(r"<!--\s*doc-test:\s*(\w[\w-]*)[^>]*-->\s*$")


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """(line number, code, marker) of each ```python block; marker from the line before."""
    blocks = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = _MARK.search(before)
        blocks.append((line, match.group(1), mark.group(1) if mark else None))
    return blocks


def runnable(blocks: list[tuple[int, str, str | None]]) -> str:
    """The blocks to run as one script, each introduced by a comment naming its line."""
    parts = []
    for line, code, mark in blocks:
        if mark == "skip" or (mark == "cuda" and not torch.cuda.is_available()):
            continue
        if mark not in (None, "skip", "cuda"):
            raise ValueError(f"unknown doc-test marker {mark!r} (line {line})")
        parts.append(f"# --- block at line {line}\n{code}")
    return "\n".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_python_examples_run(doc: Path, tmp_path: Path) -> None:
    script = runnable(python_blocks(doc.read_text()))
    if not script:
        pytest.skip(f"{doc.name} has no python example to run")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "WANDB_MODE": "offline"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"{doc.name}:\n{proc.stderr[-3000:]}"


def test_markers_and_blocks_are_found() -> None:
    text = "a\n```python\nx = 1\n```\n<!-- doc-test: skip (needs a GPU) -->\n```python\ny\n```\n"
    blocks = python_blocks(text)
    assert blocks == [(2, "x = 1\n", None), (6, "y\n", "skip")]
    assert runnable(blocks) == "# --- block at line 2\nx = 1\n"
