"""The README's Python example runs, gives every metric it names, and is reproducible."""

from __future__ import annotations

import contextlib
import io
import math
import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
METRICS = ("A_T", "F_T", "BWT", "FWT", "LCA_10")


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, "the README has one Python example"
    return blocks[0]


def _run(code: str) -> dict[str, Any]:
    scope: dict[str, Any] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, str(README), "exec"), scope)
    summary: dict[str, Any] = scope["strategy"].evaluator.summary()
    return summary


@pytest.mark.slow
def test_readme_example_gives_every_metric_reproducibly() -> None:
    code = _example()
    for name in METRICS:
        assert name in code  # the example names the metrics it promises
    first, second = _run(code), _run(code)
    for name in METRICS:
        value = first[name]
        assert isinstance(value, float) and math.isfinite(value), (name, value)
    assert first["A_T"] == second["A_T"]
    assert first["accuracy_matrix"] == second["accuracy_matrix"]
    assert first["experience_ids"] == [0, 1, 2, 3, 4]
