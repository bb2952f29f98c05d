"""Models: MLP, multi-task modules and heads."""

from agem.models.mlp import MLP, MultiHeadMLP
from agem.models.multitask import MultiHeadClassifier, MultiTaskModule

__all__ = ["MLP", "MultiHeadClassifier", "MultiHeadMLP", "MultiTaskModule"]
