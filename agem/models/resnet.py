"""The reduced ResNet-18 of the GEM and A-GEM papers (3x fewer feature maps).

Same layout as ResNet-18 (BasicBlocks [2, 2, 2, 2] with widths nf, 2nf, 4nf, 8nf), but
with a base width `nf=20` instead of 64, a 3x3 stride-1 stem (no max-pool, for 32x32
inputs) and global average pooling before the classifier. With nf=20, 3 input channels
and 10 classes it has 1,094,750 parameters (with nf=64 it is the usual CIFAR
ResNet-18, 11,173,962).
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor, nn

from agem.models.multitask import MultiHeadClassifier, MultiTaskModule


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv + BatchNorm layers with a residual connection (1x1 conv when reshaped)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = _conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(c_out),
            )
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ReducedResNet18(MultiTaskModule):
    """Reduced ResNet-18: single head, or one head per task label with `multihead=True`.

    Inputs are images `[batch, in_channels, H, W]` (any H, W >= 8; the papers use
    32x32). The forward pass takes `(x, task_labels=None)`: a single-head model ignores
    the task labels, a multi-head one routes each sample to its task's head (heads are
    created by `adaptation`, which the training template calls for each experience).
    It is a `MultiTaskModule` in both cases so that the template always passes labels.
    """

    def __init__(
        self, num_classes: int, nf: int = 20, multihead: bool = False, in_channels: int = 3
    ) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("nf", nf), ("in_channels", in_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.multihead = bool(multihead)
        widths = (nf, 2 * nf, 4 * nf, 8 * nf)
        layers: list[nn.Module] = [
            _conv3x3(in_channels, nf),
            nn.BatchNorm2d(nf),
            nn.ReLU(),
        ]
        c_in = nf
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(c_in, width, stride), BasicBlock(width, width, 1)]
            c_in = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier: nn.Module = (
            MultiHeadClassifier(c_in, num_classes) if multihead else nn.Linear(c_in, num_classes)
        )

    def adaptation(self, task_labels: Iterable[int]) -> list[nn.Parameter]:
        """Create heads for new task labels (multi-head only); return the new parameters."""
        if isinstance(self.classifier, MultiHeadClassifier):
            return self.classifier.adaptation(task_labels)
        return []

    def forward(self, x: Tensor, task_labels: Tensor | int | None = None) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected images [batch, C, H, W], got shape {tuple(x.shape)}")
        h = self.features(x)
        if isinstance(self.classifier, MultiHeadClassifier):
            if task_labels is None:
                raise ValueError("a multi-head ReducedResNet18 needs task_labels")
            return self.classifier(h, task_labels)
        return self.classifier(h)
