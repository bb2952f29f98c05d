"""Loggers: plugins that report training and evaluation; each is optional.

- `ConsoleLogger`: tqdm bars per epoch on a terminal, plain lines otherwise.
- `CSVLogger`: losses, epochs, evaluations and metrics in one tidy CSV file.
- `JSONResultsWriter`: the evaluator's results as a JSON file.
- `TensorBoardLogger`: TensorBoard scalars and hyperparameters (`torch.utils.tensorboard`).
- `WandBLogger`: a Weights & Biases run (optional: the `wandb` extra,
  ``pip install -e '.[wandb]'``).

All of them read the strategy's evaluator (`strategy.evaluator`) and run after it.
"""

from agem.plugins.loggers.base import Logger, LossBuffer, LossPoint
from agem.plugins.loggers.console import ConsoleLogger
from agem.plugins.loggers.csv_logger import CSVLogger
from agem.plugins.loggers.json_writer import JSONResultsWriter, write_json
from agem.plugins.loggers.tensorboard_logger import TensorBoardLogger
from agem.plugins.loggers.wandb_logger import WandBLogger

__all__ = [
    "CSVLogger",
    "ConsoleLogger",
    "JSONResultsWriter",
    "Logger",
    "LossBuffer",
    "LossPoint",
    "TensorBoardLogger",
    "WandBLogger",
    "write_json",
]
