"""Plugins: every continual-learning method, logger and evaluator is one."""

from agem.plugins.agem import AGEMPlugin
from agem.plugins.base import Plugin
from agem.plugins.evaluation import EvaluationPlugin
from agem.plugins.ewc import EWCPlugin
from agem.plugins.ewc_running import RunningEWCPlugin
from agem.plugins.gem import GEMPlugin
from agem.plugins.loggers import ConsoleLogger, CSVLogger, JSONResultsWriter, TensorBoardLogger
from agem.plugins.mas import MASPlugin
from agem.plugins.pnn import PNNPlugin
from agem.plugins.quadratic import QuadraticPenaltyPlugin
from agem.plugins.replay import ReplayPlugin
from agem.plugins.rwalk import RWalkPlugin
from agem.plugins.si import SIPlugin

__all__ = [
    "AGEMPlugin",
    "CSVLogger",
    "ConsoleLogger",
    "EWCPlugin",
    "EvaluationPlugin",
    "GEMPlugin",
    "JSONResultsWriter",
    "MASPlugin",
    "PNNPlugin",
    "Plugin",
    "QuadraticPenaltyPlugin",
    "RWalkPlugin",
    "ReplayPlugin",
    "RunningEWCPlugin",
    "SIPlugin",
    "TensorBoardLogger",
]
