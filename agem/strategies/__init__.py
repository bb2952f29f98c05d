"""Strategies: the template plus the plugins that make a method."""

from agem.strategies.agem import AGEM
from agem.strategies.cumulative import Cumulative
from agem.strategies.ewc import EWC
from agem.strategies.gem import GEM
from agem.strategies.mas import MAS
from agem.strategies.naive import Naive
from agem.strategies.pnn import PNN
from agem.strategies.replay import Replay
from agem.strategies.rwalk import RWalk
from agem.strategies.si import SI

__all__ = ["AGEM", "EWC", "GEM", "MAS", "PNN", "SI", "Cumulative", "Naive", "RWalk", "Replay"]
