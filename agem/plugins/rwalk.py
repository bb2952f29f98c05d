"""`RWalkPlugin`: Riemannian Walk (Chaudhry, Dokania, Ajanthan and Torr, ECCV 2018).

Two importances, both from training itself (no extra pass over the data):

- the Fisher as a moving average over training steps (EWC++): every `every` steps the
  mean of the squared task-loss gradients of those steps is folded in,
  F <- (1 - alpha) F + alpha * mean g^2 (`agem.plugins.quadratic.RunningFisher`);
- the path-integral score measured in the Fisher metric: over each window of `every`
  steps, with omega = sum over its steps of -g * delta (g the task loss's gradient, delta
  the parameter's change in the step) and D the parameter's change over the window,

      s_task += omega / (1/2 * F * D^2 + xi),

  F being the Fisher before the window's update. When an experience ends the score is
  averaged with the earlier ones, s <- (s + s_task) / 2 (s = s_task after the first).

When an experience ends, F and s are each normalised to [0, 1] by their minimum and
maximum over all parameters, and the anchor theta* becomes the current parameters; later
experiences add

    lambda * sum_i (F^_i + s^_i) (theta_i - theta*_i)^2

to the loss (`agem.plugins.quadratic`). Cost per step: a few element-wise operations per
parameter, however many experiences came before.

The A-GEM authors' code differs from the paper where `authors=True` follows it: their
score's denominator has no 1/2 (F * D^2 + xi) and each window's term is clipped at zero;
their score update is s <- s + (s + s_task)/2 (an assign_add where the paper averages).
Both use xi = 1e-3, alpha = 0.9 and windows of 10 steps. A window left unfinished when an
experience ends is folded in here; their loop drops it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agem.plugins.quadratic import (
    ParamDict,
    QuadraticPenaltyPlugin,
    RunningFisher,
    StepTracker,
    min_max_normalised,
    positive,
    positive_int,
    snapshot,
)

if TYPE_CHECKING:
    from agem.template import BaseTemplate


class RWalkPlugin(QuadraticPenaltyPlugin):
    """Riemannian Walk: EWC++ Fisher plus the normalised path-integral score.

    Args:
        rwalk_lambda: the penalty's weight lambda >= 0.
        rwalk_alpha: the Fisher's moving-average weight alpha in (0, 1].
        every: steps per Fisher update and score window.
        xi: the damping of the score's denominator.
        authors: the A-GEM authors' score (no 1/2, clipped windows, their update rule).
    """

    label = "RWalk"
    _state_names = ("fisher", "score")

    def __init__(
        self,
        *,
        rwalk_lambda: float = 1.0,
        rwalk_alpha: float = 0.9,
        every: int = 10,
        xi: float = 1e-3,
        authors: bool = False,
    ) -> None:
        super().__init__(rwalk_lambda, option="rwalk_lambda")
        self.running = RunningFisher(alpha=rwalk_alpha, every=positive_int("every", every))
        self.xi = positive("xi", xi)
        self.authors = bool(authors)
        self.tracker = StepTracker()
        self.score: ParamDict = {}
        self._task_score: ParamDict = {}
        self._window_start: ParamDict = {}

    @property
    def fisher(self) -> ParamDict:
        """The running Fisher F (not normalised)."""
        return self.running.fisher

    @fisher.setter
    def fisher(self, value: ParamDict) -> None:
        self.running.fisher = value

    def settings(self) -> dict[str, Any]:
        return {
            "rwalk_lambda": self.strength,
            "rwalk_alpha": self.running.alpha,
            "every": self.running.every,
            "xi": self.xi,
            "authors": self.authors,
        }

    def before_training_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        super().before_training_exp(strategy, **kwargs)
        self.tracker.reset(strategy.model)
        self.running.reset_window(self.tracker.params)
        self._window_start = snapshot(self.tracker.params)
        self._task_score = {n: w.new_zeros(w.shape) for n, w in self._window_start.items()}

    def observe_gradients(self, strategy: BaseTemplate) -> None:
        self.tracker.record()

    def after_update(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        self.tracker.path_step()
        if self.running.add(self.tracker.gradients()):
            self._close_window()

    def _close_window(self) -> None:
        """Add the window's score (with F before its update), then update F."""
        half = 1.0 if self.authors else 0.5
        for n, p in self.tracker.params.items():
            d = p.detach() - self._window_start[n]
            term = self.tracker.omega[n] / (half * self.running.fisher[n] * d * d + self.xi)
            if self.authors:
                term = term.clamp_min(0)
            self._task_score[n] += term
            self._window_start[n].copy_(p.detach())
            self.tracker.omega[n].zero_()
        self.running.update()

    def after_training_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Average the score, normalise F and s, anchor at the current parameters."""
        if self.running.count:
            self._close_window()
        score = dict(self.score)
        for n, s_task in self._task_score.items():
            old = score.get(n)
            if old is None or old.shape != s_task.shape:
                score[n] = s_task.clone()
            elif self.authors:
                score[n] = old + (old + s_task) / 2
            else:
                score[n] = (old + s_task) / 2
        self.score = score
        f_hat = min_max_normalised(self.running.fisher)
        s_hat = min_max_normalised(self.score)
        self.importance = {n: f_hat[n] + s_hat[n] for n in f_hat if n in s_hat}
        self.anchor = {**self.anchor, **snapshot(self.tracker.params)}
