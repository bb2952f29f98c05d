"""agem: continual learning with A-GEM (Averaged Gradient Episodic Memory) in PyTorch."""

from agem import benchmarks, metrics, models, plugins
from agem.clock import Clock
from agem.strategies import AGEM, EWC, GEM, MAS, PNN, SI, Cumulative, Naive, Replay, RWalk
from agem.template import BaseTemplate

__version__ = "0.1.0"

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
