"""Models: MLP, reduced ResNet-18, multi-task modules and heads, progressive networks."""

from agem.models.mlp import MLP, MultiHeadMLP
from agem.models.multitask import MultiHeadClassifier, MultiTaskModule
from agem.models.progressive import ProgressiveNet
from agem.models.resnet import ReducedResNet18

__all__ = [
    "MLP",
    "MultiHeadClassifier",
    "MultiHeadMLP",
    "MultiTaskModule",
    "ProgressiveNet",
    "ReducedResNet18",
]
