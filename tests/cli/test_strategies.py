"""`agem run --strategy {gem,replay,ewc,cumulative}` on the embedded default data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agem.cli.main import main

SMALL = ["--n-experiences", "2", "--hidden-sizes", "16", "--batch-size", "20", "--threads", "1"]


@pytest.mark.parametrize(
    ("strategy", "options"),
    [
        ("gem", ["--patterns-per-experience", "20", "--memory-strength", "0.1"]),
        ("replay", ["--mem-size", "50"]),
        ("ewc", ["--ewc-lambda", "5"]),
        ("ewc", ["--ewc-lambda", "5", "--ewc-mode", "online", "--decay-factor", "0.5"]),
        ("cumulative", []),
    ],
)
def test_run_each_strategy(
    strategy: str, options: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    rc = main(["run", "--strategy", strategy, *SMALL, *options, "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["strategy"] == strategy
    results = json.loads((out / "results.json").read_text())
    assert len(results["accuracy_matrix"]) == 2
    assert 0.0 <= results["A_T"] <= 1.0
    assert results["A_T"] > 0.2  # it learned something (chance is 0.1)


@pytest.mark.parametrize(
    "args",
    [
        ["--strategy", "replay", "--mem-size", "0"],
        ["--strategy", "gem", "--memory-strength", "-1"],
        ["--strategy", "ewc", "--ewc-mode", "online", "--decay-factor", "2"],
        ["--strategy", "gem", "--model", "resnet18"],  # flattened default data
    ],
)
def test_bad_strategy_options_exit_2(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["run", *args, *SMALL, "--out", str(tmp_path / "run")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
