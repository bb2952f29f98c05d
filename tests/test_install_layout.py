"""The README's editable install is not shadowed by a clone named `agem/` in the current
folder (running Python from the folder above the clone).

setuptools' default editable mode for this flat layout imports the package through a
finder placed after Python's path finder, so a folder `agem/` (the clone itself, a
namespace package) in the current directory wins and `import agem` yields an empty module.
The `compat` editable mode puts the project folder on `sys.path` instead, where the real
package (with `__init__.py`) takes precedence over a namespace folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_editable_install_from_the_readme_survives_a_clone_named_agem(tmp_path: Path) -> None:
    assert "--config-settings editable_mode=compat" in (ROOT / "README.md").read_text()
    clone = tmp_path / "agem"
    clone.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, clone / name)
    shutil.copytree(ROOT / "agem", clone / "agem", ignore=shutil.ignore_patterns("__pycache__"))
    prefix = tmp_path / "prefix"
    install = [
        sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
        "--ignore-installed",  # into `prefix` only: leave this environment's agem alone
        "--prefix", str(prefix), "-e", str(clone),
        "--config-settings", "editable_mode=compat",
    ]  # fmt: skip
    proc = subprocess.run(install, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    purelib = sysconfig.get_path("purelib", vars={"base": str(prefix)})
    code = (
        "import site, sys\n"
        # forget this environment's own install of agem (compat: the project folder on
        # sys.path; default mode: an editable finder), so that only the new one can serve
        f"sys.path[:] = [p for p in sys.path if p != {str(ROOT)!r}]\n"
        "sys.meta_path[:] = [f for f in sys.meta_path\n"
        "    if not getattr(f, '__module__', '').startswith('__editable__')]\n"
        f"site.addsitedir({purelib!r})\n"  # processes the install's .pth like site-packages
        "import agem\n"
        "print(agem.__file__)\n"
        "agem.benchmarks.permuted_digits(n_experiences=2)\n"
    )
    # from the folder above the clone, where `agem/` (the clone) is in the current directory
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(clone / "agem" / "__init__.py")
