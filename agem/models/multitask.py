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
    pass runs each head only on its own task's samples, so the heads of tasks absent
    from a minibatch are not part of the autograd graph and get no gradient (`.grad`
    stays None): weight decay, momentum or Adam do not move them. An unknown task label
    raises ValueError.

    Cost: which heads enter the graph must be decided on the host, so the task labels
    are read on the host once per forward pass. For labels on the CPU (the usual case
    for a CPU model) that is free; for labels on an accelerator it is one small
    device-to-host copy (a synchronisation), which only an int label (one task for the
    whole minibatch) avoids. Running every head and gathering would avoid it, but then
    every head gets a (zero) gradient and the optimizer moves all of them; that path is
    used only under torch.func transforms (vmap), where labels cannot be read at all.
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
        return new

    def _head(self, task: int) -> nn.Module:
        key = str(task)
        if key not in self.heads:
            raise ValueError(f"no head for task label {task}; heads: {self.task_labels}")
        return self.heads[key]

    def forward(self, x: Tensor, task_labels: Tensor | int) -> Tensor:
        if isinstance(task_labels, int):
            return self._head(task_labels)(x)
        labels = task_labels.reshape(-1).cpu()  # free on the CPU; see the class docstring
        try:
            present = [int(t) for t in torch.unique(labels).tolist()]
        except RuntimeError:  # under torch.func transforms (vmap) labels cannot be read
            return self._gather(x, task_labels)
        if len(present) == 1:
            return self._head(present[0])(x)
        rows = [torch.nonzero(labels == t).flatten() for t in present]
        outs = [
            self._head(t)(x[r.to(x.device, non_blocking=True)])
            for t, r in zip(present, rows, strict=True)
        ]
        out = torch.cat(outs)
        where = torch.cat(rows).to(x.device, non_blocking=True)
        return out.new_zeros(out.shape).index_copy(0, where, out)

    def _gather(self, x: Tensor, task_labels: Tensor) -> Tensor:
        """Every head on every sample, then each sample's row from its task's head.

        For torch.func transforms only (e.g. per-sample gradients with vmap), where the
        labels cannot be read: there every head is in the graph (zero gradients).
        """
        labels = self.task_labels
        index = torch.full((max(labels) + 1,), -1, dtype=torch.long)
        for i, t in enumerate(labels):
            index[t] = i
        outs = torch.stack([self.heads[str(t)](x) for t in labels])  # [heads, batch, classes]
        which = index.to(task_labels.device)[task_labels.reshape(-1)]
        return outs[which, torch.arange(x.shape[0], device=x.device)]
