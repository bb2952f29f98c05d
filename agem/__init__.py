"""agem: continual learning with A-GEM (Averaged Gradient Episodic Memory) in PyTorch.

The public names below are imported on first use, not with the package: `import agem`
costs nothing, so a process that needs only a light submodule (a sweep's parent, the
Ray actor that starts a warm worker, `agem --help`) never imports torch for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agem.version import __version__

if TYPE_CHECKING:
    from agem import benchmarks, metrics, models, plugins
    from agem.core.clock import Clock
    from agem.core.template import BaseTemplate
    from agem.strategies import AGEM, EWC, GEM, MAS, PNN, SI, Cumulative, Naive, Replay, RWalk

__all__ = [
    "AGEM",
    "EWC",
    "GEM",
    "MAS",
    "PNN",
    "SI",
    "BaseTemplate",
    "Clock",
    "Cumulative",
    "Naive",
    "RWalk",
    "Replay",
    "__version__",
    "benchmarks",
    "metrics",
    "models",
    "plugins",
]


#: Where the public names that are not strategies or submodules live.
_HOMES = {"Clock": "agem.core.clock", "BaseTemplate": "agem.core.template"}


def _home(name: str) -> str:
    """The module that defines public name `name` (a submodule's is itself)."""
    return _HOMES.get(name, f"agem.{name}" if name.islower() else "agem.strategies")


if not TYPE_CHECKING:  # type checkers see the imports above, so a misspelt name is an error

    def __getattr__(name: str) -> Any:
        """Import a public name on first use and keep it, as an eager import would have."""
        if name not in __all__ or name == "__version__":
            raise AttributeError(f"module 'agem' has no attribute {name!r}")
        where = _home(name)
        module = importlib.import_module(where)
        value = module if where == f"agem.{name}" else getattr(module, name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
