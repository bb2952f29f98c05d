"""A sweep draws each run's own plots only on request (`agem sweep --plots`, or a spec's
`plots` option); its summary plot always."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agem.sweeps.runner import plan
from agem.sweeps.spec import parse_spec
from tests.helpers.runs import env

SWEEP_TOML = """
[base]
benchmark = "permuted_digits"
n_experiences = 1
hidden_sizes = [8]
lca_beta = 2
patterns_per_experience = 10
sample_size = 5
{extra}
[grid]
seed = [0, 1]
"""
PLOTS = ("accuracy_matrix.png", "accuracy_over_time.png", "lca.png")


def _argvs(tmp_path: Path, *, extra: str = "", plots: bool = False, fleet: int = 1) -> list:
    spec = parse_spec(SWEEP_TOML.format(extra=extra))
    tasks, _ = plan(spec, tmp_path, threads=1, fleet=fleet, plots=plots)
    return [list(task.argv) for task in tasks]


def test_runs_get_no_plots_unless_asked(tmp_path: Path) -> None:
    assert all("--no-plots" in argv for argv in _argvs(tmp_path))
    assert all("--no-plots" in argv for argv in _argvs(tmp_path, fleet=2))
    assert not any("--no-plots" in argv for argv in _argvs(tmp_path, plots=True))


@pytest.mark.parametrize("value", ["true", "false"])
def test_a_spec_that_sets_plots_decides_for_its_runs(tmp_path: Path, value: str) -> None:
    argvs = _argvs(tmp_path, extra=f"plots = {value}")
    assert all(argv.count("--no-plots") == (value == "false") for argv in argvs)


def test_a_restarted_run_gets_no_plots_either(tmp_path: Path) -> None:
    (tmp_path / "seed-0").mkdir()
    (tmp_path / "seed-0" / "stray").write_text("killed before its config")  # restarted
    argvs = _argvs(tmp_path)
    restarted = [argv for argv in argvs if "--overwrite" in argv]
    assert len(restarted) == 1 and "--no-plots" in restarted[0]


def _sweep(tmp_path: Path, *extra: str) -> Path:
    tmp_path.mkdir()
    spec = tmp_path / "spec.toml"
    spec.write_text(SWEEP_TOML.format(extra=""))
    out = tmp_path / "sweep"
    done = subprocess.run(
        [sys.executable, "-m", "agem", "sweep", str(spec), "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=240,
        env=env(),
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert (out / "summary.png").stat().st_size > 1000  # always
    return out


@pytest.mark.slow
def test_sweep_draws_run_plots_only_with_plots(tmp_path: Path) -> None:
    plain = _sweep(tmp_path / "plain", "--threads", "1")
    asked = _sweep(tmp_path / "asked", "--threads", "1", "--plots")
    for seed in (0, 1):
        assert not any((plain / f"seed-{seed}" / name).exists() for name in PLOTS)
        assert json.loads((plain / f"seed-{seed}" / "config.json").read_text())["plots"] is False
        assert all((asked / f"seed-{seed}" / name).is_file() for name in PLOTS)
