"""`PNNPlugin`: train a `ProgressiveNet` as a progressive network (Rusu et al., 2016).

The template creates a task's column when the task first appears (model adaptation adds
its parameters to the optimizer). Before an experience is trained, this plugin makes the
columns of the experience's task labels the only trainable parameters; when it ends, those
columns are frozen for good (`requires_grad=False`: no gradient, so no optimizer, weight
decay or momentum moves them). An earlier task's column, and so its outputs, never change
again: a progressive network does not forget. It needs task labels (one column per task):
a task seen in an earlier experience cannot be trained again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agem.benchmarks.streams import as_tensor_dataset
from agem.models.progressive import ProgressiveNet
from agem.plugins.base import Plugin

if TYPE_CHECKING:
    from agem.template import BaseTemplate


def _experience_tasks(strategy: BaseTemplate) -> list[int]:
    exp = strategy.experience
    assert exp is not None
    if exp.task_label >= 0:
        return [exp.task_label]
    data = as_tensor_dataset(strategy.adapted_dataset)  # type: ignore[arg-type]
    if data is None:
        raise ValueError("PNN needs experiences with task labels (one column per task)")
    return [int(t) for t in data.t.unique().tolist()]


class PNNPlugin(Plugin):
    """Trains the current task's column of a `ProgressiveNet`; freezes the others."""

    def __init__(self) -> None:
        self.trained: list[int] = []  # tasks whose columns are frozen, in training order

    @staticmethod
    def _model(strategy: BaseTemplate) -> ProgressiveNet:
        model = strategy.model
        if not isinstance(model, ProgressiveNet):
            raise TypeError(f"PNN needs an agem.models.ProgressiveNet, got {type(model).__name__}")
        return model

    def before_training_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Only the columns of this experience's tasks train."""
        model = self._model(strategy)
        tasks = _experience_tasks(strategy)
        again = sorted(set(tasks) & set(self.trained))
        if again:
            raise ValueError(
                f"PNN: task {again[0]} was trained in an earlier experience and its column "
                "is frozen; a progressive network trains each task once"
            )
        for t in model.task_labels:
            model.column(t).requires_grad_(t in tasks)

    def after_training_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Freeze the columns just trained."""
        model = self._model(strategy)
        for t in _experience_tasks(strategy):
            model.column(t).requires_grad_(False)
            if t not in self.trained:
                self.trained.append(t)

    def state_dict(self) -> dict[str, Any]:
        return {"trained": list(self.trained)}

    def check_state_dict(self, state: dict[str, Any]) -> None:
        trained = state.get("trained") if isinstance(state, dict) else None
        if not isinstance(trained, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) for t in trained
        ):
            raise ValueError("checkpoint PNN state is malformed")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.check_state_dict(state)
        self.trained = list(state["trained"])
