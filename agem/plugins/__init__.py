"""Plugins: every continual-learning method, logger and evaluator is one."""

from agem.plugins.agem import AGEMPlugin
from agem.plugins.base import Plugin
from agem.plugins.evaluation import EvaluationPlugin

__all__ = ["AGEMPlugin", "EvaluationPlugin", "Plugin"]
