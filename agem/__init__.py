"""agem: continual learning with A-GEM (Averaged Gradient Episodic Memory) in PyTorch."""

from agem import benchmarks, metrics, models, plugins
from agem.core.clock import Clock
from agem.core.template import BaseTemplate
from agem.strategies import AGEM, EWC, GEM, MAS, PNN, SI, Cumulative, Naive, Replay, RWalk
from agem.version import __version__

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
