"""Models that take task labels: `MultiTaskModule` and `MultiHeadClassifier`."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


class MultiTaskModule(nn.Module):
    """A module whose forward takes `(x, task_labels)`.

    The template passes each sample's task label (a long tensor of shape [batch]) to
    models of this type, and only to them. `adaptation(task_labels)` is called with an
    experience's task labels before training on it, so that models can grow (new heads).
    """

    def forward(self, x: Tensor, task_labels: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, task_labels)")

    def adaptation(self, task_labels: Iterable[int]) -> list[nn.Parameter]:
        """Prepare for these task labels; return the parameters that were created."""
        return []


class MultiHeadClassifier(MultiTaskModule):
    """One linear head per task label, created when a new task label appears.

    All heads have `num_classes` outputs (class ids are remapped per task). The forward
    pass routes each sample to its own task's head without a host synchronisation: all
    heads are evaluated and each sample's row is gathered from its task's head.
    """

    def __init__(
        self, in_features: int, num_classes: int, *, initial_task_labels: Iterable[int] = (0,)
    ) -> None:
        super().__init__()
        if in_features < 1 or num_classes < 1:
            raise ValueError("in_features and num_classes must be >= 1")
        self.in_features = in_features
        self.num_classes = num_classes
        self.heads = nn.ModuleDict()
        self._head_index: Tensor
        self.register_buffer(
            "_head_index", torch.full((0,), -1, dtype=torch.long), persistent=False
        )
        self.adaptation(initial_task_labels)

    @property
    def task_labels(self) -> list[int]:
        return sorted(int(k) for k in self.heads)

    def adaptation(self, task_labels: Iterable[int]) -> list[nn.Parameter]:
        new: list[nn.Parameter] = []
        for t in sorted({int(t) for t in task_labels}):
            if t < 0:
                raise ValueError(f"task labels must be >= 0, got {t}")
            if str(t) in self.heads:
                continue
            ref = next(iter(self.heads.values()), None)
            head = nn.Linear(self.in_features, self.num_classes)
            if isinstance(ref, nn.Linear):
                head = head.to(device=ref.weight.device, dtype=ref.weight.dtype)
            self.heads[str(t)] = head
            new.extend(head.parameters())
        if new:
            labels = self.task_labels
            index = torch.full(
                (max(labels) + 1,), -1, dtype=torch.long, device=self._head_index.device
            )
            order = {k: i for i, k in enumerate(self.heads)}
            for t in labels:
                index[t] = order[str(t)]
            self._head_index = index
        return new

    def forward(self, x: Tensor, task_labels: Tensor | int) -> Tensor:
        if isinstance(task_labels, int):
            return self.heads[str(task_labels)](x)
        outs = torch.stack([head(x) for head in self.heads.values()])  # [heads, batch, classes]
        which = self._head_index[task_labels]
        return outs[which, torch.arange(x.shape[0], device=x.device)]
