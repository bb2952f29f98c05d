"""Training loss and accuracy of an epoch, on the trained experience's own samples.

Losses, sizes, argmax and labels are buffered per minibatch and summed in blocks on the
device, so that an iteration costs one device op (the argmax) and the epoch is read back
once.
"""

from __future__ import annotations

import torch
from torch import Tensor

FOLD_EVERY = 256  # training minibatches whose predictions are compared in one block


class TrainingStatistics:
    """The running loss sum, correct count and sample count of the current epoch."""

    def __init__(self) -> None:
        self.loss: Tensor | None = None
        self.correct: Tensor | None = None
        self.count = 0
        self._losses: list[Tensor] = []
        self._sizes: list[int] = []
        self._preds: list[Tensor] = []
        self._labels: list[Tensor] = []

    def start_epoch(self, device: torch.device) -> None:
        """Zero the sums on `device`."""
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.long, device=device)
        self.count = 0
        self._losses, self._sizes, self._preds, self._labels = [], [], [], []

    @property
    def started(self) -> bool:
        return self.loss is not None

    def add(self, loss: Tensor, output: Tensor, labels: Tensor) -> None:
        """One minibatch: its loss (a scalar or per sample), outputs and labels."""
        n = int(labels.shape[0])
        value = loss.detach()
        self._losses.append(value if value.dim() == 0 else value.mean())
        self._sizes.append(n)
        self._preds.append(output.detach().argmax(dim=-1))
        self._labels.append(labels)
        self.count += n
        if len(self._losses) >= FOLD_EVERY:
            self.fold()

    def fold(self) -> None:
        """Add the buffered minibatches to the epoch's loss sum and correct count."""
        if self._losses and self.loss is not None and self.correct is not None:
            losses = torch.stack(self._losses).to(torch.float64)
            if len(set(self._sizes)) == 1:
                self.loss.add_(losses.sum(), alpha=self._sizes[0])
            else:  # a last, smaller minibatch: once per epoch
                sizes = torch.tensor(self._sizes, dtype=torch.float64).to(losses.device)
                self.loss.add_((losses * sizes).sum())
            right = torch.cat(self._preds) == torch.cat(self._labels)
            self.correct.add_(right.sum())
        self._losses, self._sizes, self._preds, self._labels = [], [], [], []

    def epoch(self) -> tuple[float, float, int] | None:
        """(mean loss, accuracy, samples) of the epoch (one read-back), or None if empty."""
        self.fold()
        if self.loss is None or self.correct is None or not self.count:
            return None
        loss, correct = torch.stack([self.loss, self.correct.to(torch.float64)]).tolist()
        return loss / self.count, correct / self.count, self.count
