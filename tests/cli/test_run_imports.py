"""`agem run` imports only what it uses: matplotlib for plots (where more than one CPU is
available, only in the child that draws them, which imports it while the run trains),
TensorBoard and W&B for their loggers, and never `torch._dynamo`; checked in real
`agem run` processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agem.forked import available_cpus, can_fork
from tests.helpers.runs import TINY, env

# runs `agem run ARGS` in this process, then names the heavy modules it imported
_PROBE = """
import sys
from agem.cli.main import main
code = main(sys.argv[1:])
heavy = ("matplotlib", "tensorboard", "torch.utils.tensorboard", "wandb", "torch._dynamo")
print(" ".join(sorted(h for h in heavy if h in sys.modules)) or "-")
sys.exit(code)
"""
PNGS = ("accuracy_matrix.png", "accuracy_over_time.png", "lca.png")
#: what a run that draws its plots imports itself: nothing when a standby child draws them
PLOTTING = "-" if can_fork() and available_cpus() > 1 else "matplotlib"


@pytest.mark.parametrize(
    ("options", "imported"),
    [
        (["--no-plots", "--logger", "csv"], "-"),
        (["--logger", "csv"], PLOTTING),
        (["--no-plots", "--logger", "csv,tensorboard"], "tensorboard torch.utils.tensorboard"),
    ],
)
@pytest.mark.slow
def test_run_imports_only_what_it_uses(tmp_path: Path, options: list[str], imported: str) -> None:
    out = tmp_path / "run"
    argv = ["run", *TINY, "--n-experiences", "2", *options, "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == imported
    assert (out / "metrics.csv").is_file() and (out / "results.json").is_file()
    assert all((out / name).is_file() == ("--no-plots" not in options) for name in PNGS)
