"""agem: continual learning with A-GEM (Averaged Gradient Episodic Memory) in PyTorch."""

from agem import benchmarks, metrics, models, plugins
from agem.clock import Clock
from agem.strategies import AGEM, Naive
from agem.template import BaseTemplate

__version__ = "0.1.0"

__all__ = [
    "AGEM",
    "BaseTemplate",
    "Clock",
    "Naive",
    "__version__",
    "benchmarks",
    "metrics",
    "models",
    "plugins",
]
