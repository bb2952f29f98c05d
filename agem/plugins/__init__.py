"""Plugins: every continual-learning method, logger and evaluator is one."""

from agem.core.evaluation import EvaluationPlugin
from agem.core.plugin import Plugin
from agem.plugins.agem import AGEMPlugin
from agem.plugins.ewc import EWCPlugin
from agem.plugins.gem import GEMPlugin
from agem.plugins.loggers import ConsoleLogger, CSVLogger, JSONResultsWriter, TensorBoardLogger
from agem.plugins.replay import ReplayPlugin

__all__ = [
    "AGEMPlugin",
    "CSVLogger",
    "ConsoleLogger",
    "EWCPlugin",
    "EvaluationPlugin",
    "GEMPlugin",
    "JSONResultsWriter",
    "Plugin",
    "ReplayPlugin",
    "TensorBoardLogger",
]
