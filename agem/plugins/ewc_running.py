"""`RunningEWCPlugin`: EWC as the A-GEM paper ran it (Chaudhry et al., ICLR 2019, and
their code): one running Fisher, normalised, anchored at the last experience's weights.

The Fisher is not estimated after each experience on its data but kept as a moving
average over all training steps of all experiences (EWC++,
`agem.plugins.quadratic.RunningFisher`): every `every` steps the mean squared gradient of
the task loss over those minibatches is folded in, F <- (1 - alpha) F + alpha * mean g^2
(minibatch gradients, not per-sample ones). When an experience ends, F is normalised to
[0, 1] by its minimum and maximum over all parameters, F^ = (F - min) / (max - min), and
the anchor theta* becomes the current parameters. Later experiences add

    lambda * sum_i F^_i (theta_i - theta*_i)^2

(no 1/2, as in their code) to the loss. Since F^ <= 1, plain SGD stays stable while
2 * lr * lambda < 2, e.g. at their lr 0.03 and lambda 10, where the textbook EWC's
unnormalised Fisher makes training diverge. One term: flat cost per step.

Their loop folds a step's squared gradient in after the window check, so the first
window of each experience holds 9 of its 10 steps (divided by 10); here every window holds
`every` steps, and a window left unfinished when an experience ends is folded in with its
own mean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agem.plugins.quadratic import (
    ParamDict,
    QuadraticPenaltyPlugin,
    RunningFisher,
    min_max_normalised,
    positive_int,
    snapshot,
    trainable,
)

if TYPE_CHECKING:
    from agem.template import BaseTemplate


class RunningEWCPlugin(QuadraticPenaltyPlugin):
    """EWC with one running, normalised Fisher (the A-GEM authors' EWC).

    Args:
        ewc_lambda: the penalty's weight lambda >= 0.
        alpha: the Fisher's moving-average weight in (0, 1] (their 0.9).
        every: steps per Fisher update (their 10).
    """

    label = "EWC"
    _state_names = ("fisher",)

    def __init__(self, *, ewc_lambda: float, alpha: float = 0.9, every: int = 10) -> None:
        super().__init__(ewc_lambda, option="ewc_lambda")
        self.running = RunningFisher(alpha=alpha, every=positive_int("every", every))
        self._params: dict[str, Any] = {}

    @property
    def fisher(self) -> ParamDict:
        """The running Fisher F (not normalised)."""
        return self.running.fisher

    @fisher.setter
    def fisher(self, value: ParamDict) -> None:
        self.running.fisher = value

    def settings(self) -> dict[str, Any]:
        return {
            "ewc_lambda": self.strength,
            "mode": "running",
            "alpha": self.running.alpha,
            "every": self.running.every,
        }

    def before_training_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        super().before_training_exp(strategy, **kwargs)
        self._params = trainable(strategy.model)
        self.running.reset_window(self._params)

    def observe_gradients(self, strategy: BaseTemplate) -> None:
        grads = [(n, p.grad) for n, p in self._params.items() if p.grad is not None]
        if self.running.add(grads):
            self.running.update()

    def after_training_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Normalise the running Fisher; anchor at the current parameters."""
        self.running.update()
        self.importance = min_max_normalised(self.running.fisher)
        self.anchor = {**self.anchor, **snapshot(self._params)}
