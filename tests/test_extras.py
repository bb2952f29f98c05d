"""Optional extras: each missing one gives a one-line message with its pip command, and the
core install (no scikit-learn, scipy, quadprog, wandb or ray) runs the default job.

"Missing" is real: the code runs in a fresh interpreter whose import finders do not find
the packages, so that `import` and `importlib.util.find_spec` behave exactly as when they
are not installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agem.extras import EXTRAS, MissingExtraError, install_hint, require

_ABSENT = """
import sys


class _Hide:
    # Wraps an import finder so that it finds nothing of the hidden packages.
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, attribute):
        return getattr(self.finder, attribute)


sys.meta_path[:] = [_Hide(finder) for finder in sys.meta_path]
"""


def run_without(packages: set[str], code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter where importing any of `packages` fails."""
    script = f"HIDDEN = {sorted(packages)!r}\n{_ABSENT}\n{code}"
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )


def _cli(*argv: str) -> str:
    return f"import sys\nfrom agem.cli.main import main\nsys.exit(main({list(argv)!r}))\n"


def _one_line_naming(stderr: str, extra: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert install_hint(extra) in lines[0] and "Traceback" not in stderr


def test_gem_without_quadprog_is_one_line_and_exit_2(tmp_path: Path) -> None:
    argv = ("run", "--strategy", "gem", "--n-experiences", "2", "--threads", "1")
    proc = run_without({"quadprog"}, _cli(*argv, "--out", str(tmp_path / "run")))
    assert proc.returncode == 2
    _one_line_naming(proc.stderr, "gem")
    assert "pip install -e '.[gem]'" in proc.stderr


def test_logger_wandb_without_wandb_is_one_line_and_exit_2(tmp_path: Path) -> None:
    argv = ("run", "--logger", "csv,wandb", "--n-experiences", "2", "--threads", "1")
    proc = run_without({"wandb"}, _cli(*argv, "--out", str(tmp_path / "run")))
    assert proc.returncode == 2
    _one_line_naming(proc.stderr, "wandb")
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


def test_wandb_logger_without_wandb_names_the_extra(tmp_path: Path) -> None:
    code = (
        "from agem.extras import MissingExtraError\n"
        "from agem.plugins.loggers import WandBLogger\n"
        "try:\n"
        f"    WandBLogger(mode='offline', dir={str(tmp_path)!r})\n"
        "except MissingExtraError as err:\n"
        "    sys.exit(str(err))\n"
    )
    proc = run_without({"wandb"}, code)
    assert proc.returncode == 1
    _one_line_naming(proc.stderr, "wandb")


def test_ray_without_ray_names_the_extra() -> None:
    code = (
        "from agem.extras import MissingExtraError, require\n"
        "try:\n"
        "    require('ray')\n"
        "except MissingExtraError as err:\n"
        "    sys.exit(str(err))\n"
    )
    proc = run_without({"ray"}, code)
    assert proc.returncode == 1
    _one_line_naming(proc.stderr, "ray")


@pytest.mark.slow
def test_default_run_needs_no_optional_package(tmp_path: Path) -> None:
    """The embedded default trains and writes its folder with none of these importable."""
    blocked = {"sklearn", "scipy", "quadprog", "wandb", "ray"}
    out = tmp_path / "run"
    proc = run_without(
        blocked, _cli("run", "--n-experiences", "2", "--threads", "1", "--out", str(out))
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "results.json").is_file() and "A_T=" in proc.stdout


def test_require_returns_the_module_when_installed() -> None:
    quadprog = pytest.importorskip("quadprog")
    assert require("gem") is quadprog


def test_require_rejects_an_unknown_extra() -> None:
    with pytest.raises(ValueError, match="unknown extra 'gpu'"):
        require("gpu")


def test_every_extra_is_declared_in_pyproject() -> None:
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    for extra in EXTRAS:
        assert f"\n{extra} = [" in text
    assert 'all = ["agem[gem,wandb,ray]"]' in text
    assert issubclass(MissingExtraError, ImportError)
