"""`import agem` is free: its public names are imported on first use, so a process that
needs only a light part of the package (a sweep's parent, a Ray actor before it starts
its warm worker) never imports torch; every public name still resolves, to the object
its own module defines."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import agem

_PROBE = """
import sys
import agem
import agem.sweeps.engines, agem.sweeps.forkserver
print("torch" in sys.modules, "matplotlib" in sys.modules)
agem.AGEM
print("torch" in sys.modules)
"""


def test_importing_the_package_and_the_sweep_engines_imports_no_torch() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.split() == ["False", "False", "True"]


def test_every_public_name_resolves_to_its_own_module_object() -> None:
    where = {
        "Clock": "agem.core.clock",
        "BaseTemplate": "agem.core.template",
        **{n: "agem.strategies" for n in ("AGEM", "EWC", "GEM", "MAS", "PNN", "SI")},
        **{n: "agem.strategies" for n in ("Cumulative", "Naive", "Replay", "RWalk")},
    }
    for name in agem.__all__:
        value = getattr(agem, name)
        if name == "__version__":
            assert value == importlib.import_module("agem.version").__version__
        elif name in where:
            assert value is getattr(importlib.import_module(where[name]), name), name
        else:
            assert value is importlib.import_module(f"agem.{name}"), name
    assert set(agem.__all__) <= set(dir(agem))
    from agem import AGEM, plugins

    assert AGEM is agem.AGEM and plugins is agem.plugins


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Agem'"):
        agem.Agem  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        from agem import Agem  # type: ignore[attr-defined]  # noqa: F401
