"""Strategies: the template plus the plugins that make a method."""

from agem.strategies.agem import AGEM
from agem.strategies.naive import Naive

__all__ = ["AGEM", "Naive"]
