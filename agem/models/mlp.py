"""A multilayer perceptron, single-head or with one head per task."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from agem.models.multitask import MultiHeadClassifier, MultiTaskModule


def _body(input_size: int, hidden_sizes: Sequence[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    width = input_size
    for h in hidden_sizes:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    return nn.Sequential(*layers)


def _check(input_size: int, hidden_sizes: Sequence[int], num_classes: int, dropout: float) -> None:
    if input_size < 1 or num_classes < 1 or any(h < 1 for h in hidden_sizes):
        raise ValueError("input_size, hidden_sizes and num_classes must be >= 1")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


class MLP(nn.Module):
    """Flatten, then Linear+ReLU per hidden size, then a linear classifier.

    The A-GEM paper's MNIST network is `MLP(784, (256, 256), 10)`.
    """

    def __init__(
        self,
        input_size: int = 784,
        hidden_sizes: Sequence[int] = (256, 256),
        num_classes: int = 10,
        *,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check(input_size, hidden_sizes, num_classes, dropout)
        self.features = _body(input_size, hidden_sizes, dropout)
        self.classifier = nn.Linear(hidden_sizes[-1] if hidden_sizes else input_size, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class MultiHeadMLP(MultiTaskModule):
    """`MLP` with a `MultiHeadClassifier`: one output head per task label."""

    def __init__(
        self,
        input_size: int = 784,
        hidden_sizes: Sequence[int] = (256, 256),
        num_classes: int = 10,
        *,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check(input_size, hidden_sizes, num_classes, dropout)
        self.features = _body(input_size, hidden_sizes, dropout)
        self.classifier = MultiHeadClassifier(
            hidden_sizes[-1] if hidden_sizes else input_size, num_classes
        )

    def forward(self, x: Tensor, task_labels: Tensor | int) -> Tensor:
        return self.classifier(self.features(x), task_labels)
