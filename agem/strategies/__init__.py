"""Strategies: the template plus the plugins that make a method."""

from agem.strategies.agem import AGEM
from agem.strategies.cumulative import Cumulative
from agem.strategies.ewc import EWC
from agem.strategies.gem import GEM
from agem.strategies.naive import Naive
from agem.strategies.replay import Replay

__all__ = ["AGEM", "EWC", "GEM", "Cumulative", "Naive", "Replay"]
