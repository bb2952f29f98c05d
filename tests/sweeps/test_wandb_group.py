"""A sweep's runs in Weights & Biases: one group named after the sweep (unless the spec
or WANDB_RUN_GROUP gives one), each run named after its grid values; the end-to-end test
reads the offline run files back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agem.sweeps.runner import plan
from agem.sweeps.spec import parse_spec
from tests.helpers.runs import env

GRID = """
[base]
benchmark = "permuted_digits"
n_experiences = 2
train_subset = 100
hidden_sizes = [16]
lca_beta = 2
logger = "{logger}"
{extra}
[grid]
strategy = ["naive", "agem"]
"""


def _argv(tmp_path: Path, *, logger: str = "+wandb", extra: str = "") -> list[list[str]]:
    spec = parse_spec(GRID.format(logger=logger, extra=extra))
    tasks, _ = plan(spec, tmp_path / "lr-study", threads=1)
    return [list(task.argv) for task in tasks]


def test_runs_that_log_to_wandb_get_the_sweep_as_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_RUN_GROUP", raising=False)
    for argv in _argv(tmp_path):
        assert argv[argv.index("--wandb-group") + 1] == "lr-study"
    for argv in _argv(tmp_path, logger="csv"):
        assert "--wandb-group" not in argv
    for argv in _argv(tmp_path, extra='wandb_group = "mine"'):
        assert argv.count("--wandb-group") == 1 and "lr-study" not in argv
    monkeypatch.setenv("WANDB_RUN_GROUP", "from-env")
    for argv in _argv(tmp_path):
        assert "--wandb-group" not in argv


@pytest.mark.slow
def test_sweep_runs_are_one_wandb_group_named_by_their_values(tmp_path: Path) -> None:
    wandb = pytest.importorskip("wandb", reason="needs pip install -e '.[wandb]'")
    del wandb
    from tests.helpers.wandb_records import history, run_info

    spec = tmp_path / "spec.toml"
    spec.write_text(GRID.format(logger="+wandb", extra='wandb_tags = "sweep-test"'))
    out = tmp_path / "lr-study"
    environment = env(WANDB_MODE="offline", WANDB_SILENT="true")
    for name in ("WANDB_RUN_GROUP", "WANDB_PROJECT", "WANDB_NAME", "WANDB_TAGS"):
        environment.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-m", "agem", "sweep", str(spec), "--out", str(out), "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
    )
    assert proc.returncode == 0, proc.stderr
    assert "[2/2] strategy-" in proc.stdout
    for strategy in ("naive", "agem"):
        (run_file,) = (out / f"strategy-{strategy}").glob("wandb/offline-run-*/run-*.wandb")
        info = run_info(run_file)
        assert info["group"] == "lr-study" and info["name"] == f"strategy-{strategy}"
        assert info["tags"] == ["sweep-test"] and info["project"] == "agem"
        _, config, _ = history(run_file)
        assert config["strategy"] == strategy and config["wandb_group"] == "lr-study"
