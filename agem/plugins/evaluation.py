"""`EvaluationPlugin`: fills the accuracy matrix as evaluations happen.

Every `eval()` on test experiences after training experience i fills row i of the
accuracy matrix R; an `eval()` before any training records the untrained model's
accuracies (b_j, for forward transfer). Counts are accumulated as tensors on the
device, so evaluation synchronises with the host once per experience, not per batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from agem import metrics
from agem.plugins.base import Plugin

if TYPE_CHECKING:
    from agem.template import BaseTemplate


class EvaluationPlugin(Plugin):
    """Accuracy and loss per evaluated experience, the accuracy matrix and its metrics."""

    order = 100  # after the methods, so it sees their final state

    def __init__(self) -> None:
        self.matrix: dict[int, dict[int, float]] = {}
        self.initial_accuracies: dict[int, float] = {}
        self._last: dict[str, Any] = {}
        self._correct: Tensor | None = None
        self._loss_sum: Tensor | None = None
        self._count = 0

    # ---- hooks ------------------------------------------------------------------
    def before_eval(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        self._last = {}

    def before_eval_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        self._correct = torch.zeros((), dtype=torch.long, device=strategy.device)
        self._loss_sum = torch.zeros((), device=strategy.device)
        self._count = 0

    def after_eval_iteration(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        assert self._correct is not None and self._loss_sum is not None
        out, y = strategy.mb_output, strategy.mb_y
        assert out is not None and strategy.loss is not None
        self._correct += (out.argmax(dim=-1) == y).sum()
        self._loss_sum += strategy.loss.detach() * y.shape[0]
        self._count += int(y.shape[0])

    def after_eval_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        assert self._correct is not None and self._loss_sum is not None
        exp = strategy.experience
        assert exp is not None
        j = exp.current_experience
        acc = self._correct.item() / max(self._count, 1)
        loss = self._loss_sum.item() / max(self._count, 1)
        self._last[f"accuracy/exp{j}"] = acc
        self._last[f"loss/exp{j}"] = loss
        if exp.origin_stream != "test":
            return
        trained = strategy.clock.train_exp_counter
        if trained == 0:
            self.initial_accuracies[j] = acc
        else:
            self.matrix.setdefault(trained - 1, {})[j] = acc

    def after_eval(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        accs = [v for k, v in self._last.items() if k.startswith("accuracy/exp")]
        losses = [v for k, v in self._last.items() if k.startswith("loss/exp")]
        if accs:
            self._last["accuracy/stream"] = sum(accs) / len(accs)
            self._last["loss/stream"] = sum(losses) / len(losses)

    # ---- results ----------------------------------------------------------------
    def last_metrics(self) -> dict[str, Any]:
        """Metrics of the last `eval()` call: per-experience and mean accuracy and loss."""
        return dict(self._last)

    def accuracy_matrix(self) -> list[list[float]]:
        """R as a T x T list (NaN where not measured); T = experiences trained or seen."""
        if not self.matrix:
            return []
        size = max(max(self.matrix) + 1, max(max(r) for r in self.matrix.values()) + 1)
        return [
            [self.matrix.get(i, {}).get(j, float("nan")) for j in range(size)] for i in range(size)
        ]

    def summary(self) -> dict[str, Any]:
        """A_T, F_T, BWT, FWT (when measurable) and the accuracy matrix."""
        R = self.accuracy_matrix()
        out: dict[str, Any] = {"accuracy_matrix": R}
        if not R or any(v != v for row in R for v in row):
            return out
        out["A_T"] = metrics.average_accuracy(R)
        out["F_T"] = metrics.forgetting(R)
        out["BWT"] = metrics.backward_transfer(R)
        T = len(R)
        if all(j in self.initial_accuracies for j in range(T)):
            b = [self.initial_accuracies[j] for j in range(T)]
            out["FWT"] = metrics.forward_transfer(R, b)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "matrix": {i: dict(r) for i, r in self.matrix.items()},
            "initial_accuracies": dict(self.initial_accuracies),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.matrix = {
            int(i): {int(j): float(v) for j, v in r.items()} for i, r in state["matrix"].items()
        }
        self.initial_accuracies = {int(j): float(v) for j, v in state["initial_accuracies"].items()}
