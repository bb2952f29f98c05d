"""`ProgressiveNet`: a progressive neural network of MLP columns (Rusu et al., 2016).

One column per task label, created when the task first appears (the template's model
adaptation, like a new head). Column k is an MLP of the same sizes whose last layer is
task k's head; each of its layers after the first also receives the previous layer's
activations of every earlier column through a lateral connection (eq. 1 of the paper):

    h_i^(k) = relu(W_i^(k) h_{i-1}^(k) + sum_{j<k} U_i^(k:j) h_{i-1}^(j)),   i >= 2

(the output layer likewise, without the relu). Laterals have no bias (the column's own
bias covers it) and the first layer has none (every column sees the same input).
`agem.plugins.PNNPlugin` trains only the current task's column and freezes the others,
so an earlier column's outputs never change.

Cost: a sample of task k runs columns 0..k, and column k holds k lateral matrices per
layer, so both the step time and the parameter count grow with the number of tasks
(linearly and quadratically). The A-GEM authors' code also gives the first layer
laterals from the input and every lateral a bias; a linear map of the input adds nothing
a column's own first layer cannot express, so they are left out here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import cast

import torch
from torch import Tensor, nn

from agem.models.multitask import MultiTaskModule


class _Column(nn.Module):
    """One column: its own layers, and laterals from `earlier` columns' activations."""

    def __init__(self, sizes: Sequence[int], earlier: int) -> None:
        super().__init__()
        pairs = list(itertools.pairwise(sizes))
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)
        self.laterals = nn.ModuleList(
            nn.ModuleList(nn.Linear(a, b, bias=False) for _ in range(earlier)) for a, b in pairs[1:]
        )

    def forward(self, x: Tensor, earlier: list[list[Tensor]]) -> tuple[Tensor, list[Tensor]]:
        """The column's output and hidden activations, given the earlier columns' ones."""
        hidden: list[Tensor] = []
        h = x
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            pre = layer(h)
            if i > 0:
                group = cast(nn.ModuleList, self.laterals[i - 1])
                for j, lateral in enumerate(group):
                    pre = pre + lateral(earlier[j][i - 1])
            if i == last:
                return pre, hidden
            h = torch.relu(pre)
            hidden.append(h)
        raise AssertionError("unreachable: a column has at least one layer")


class ProgressiveNet(MultiTaskModule):
    """Columns of Linear+ReLU layers with lateral connections, one column per task label.

    Args:
        input_size: features per sample (inputs are flattened).
        hidden_sizes: the hidden layer sizes of every column.
        num_classes: outputs of each column's head.
        initial_task_labels: tasks whose columns exist from the start.
    """

    def __init__(
        self,
        input_size: int = 784,
        hidden_sizes: Sequence[int] = (256, 256),
        num_classes: int = 10,
        *,
        initial_task_labels: Iterable[int] = (0,),
    ) -> None:
        super().__init__()
        if input_size < 1 or num_classes < 1 or any(h < 1 for h in hidden_sizes):
            raise ValueError("input_size, hidden_sizes and num_classes must be >= 1")
        self.sizes = (int(input_size), *(int(h) for h in hidden_sizes), int(num_classes))
        self.columns = nn.ModuleDict()
        self.adaptation(initial_task_labels)

    @property
    def task_labels(self) -> list[int]:
        """The tasks with a column, in the order their columns were created."""
        return [int(k) for k in self.columns]

    def adaptation(self, task_labels: Iterable[int]) -> list[nn.Parameter]:
        """Add a column for each new task label (in the given order); return its parameters."""
        new: list[nn.Parameter] = []
        for t in dict.fromkeys(int(t) for t in task_labels):
            if t < 0:
                raise ValueError(f"task labels must be >= 0, got {t}")
            if str(t) in self.columns:
                continue
            ref = next(iter(self.parameters()), None)
            column = _Column(self.sizes, len(self.columns))
            if ref is not None:
                column = column.to(device=ref.device, dtype=ref.dtype)
            self.columns[str(t)] = column
            new.extend(column.parameters())
        return new

    def column(self, task: int) -> nn.Module:
        """Task `task`'s column."""
        key = str(task)
        if key not in self.columns:
            raise ValueError(f"no column for task label {task}; columns: {self.task_labels}")
        return self.columns[key]

    def _task_output(self, x: Tensor, task: int) -> Tensor:
        target = self.column(task)
        earlier: list[list[Tensor]] = []
        for column in self.columns.values():
            out, hidden = column(x, earlier)
            if column is target:
                return out
            earlier.append(hidden)
        raise AssertionError("unreachable: the target column is among the columns")

    def forward(self, x: Tensor, task_labels: Tensor | int) -> Tensor:
        x = x.flatten(1)
        if isinstance(task_labels, int):
            return self._task_output(x, task_labels)
        labels = task_labels.reshape(-1).cpu()  # free on the CPU, one sync on a GPU
        present = [int(t) for t in torch.unique(labels).tolist()]
        if len(present) == 1:
            return self._task_output(x, present[0])
        rows = [torch.nonzero(labels == t).flatten().to(x.device) for t in present]
        outs = [self._task_output(x[r], t) for t, r in zip(present, rows, strict=True)]
        out = torch.cat(outs)
        return out.new_zeros(out.shape).index_copy(0, torch.cat(rows), out)
