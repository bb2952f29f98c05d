"""`SIPlugin`: Synaptic Intelligence, the path-integral importance (Zenke, Poole and
Ganguli, ICML 2017; "PI" in the A-GEM paper).

While an experience is trained, each parameter's contribution to the decrease of the
task loss is integrated along the optimizer's path:

    omega_i += -g_i * delta_i        (every step)

with g the gradient of the task loss alone (without the penalty) and delta the
parameter's actual change in that step. When the experience ends,

    Omega_i += omega_i / (Delta_i^2 + xi),   Delta = theta_end - theta_start of the experience,

omega is reset and the anchor theta* becomes theta_end. Later experiences add

    lambda * sum_i Omega_i (theta_i - theta*_i)^2

to the loss (`agem.plugins.quadratic`). One Omega and one anchor: the cost per step does
not grow with the number of experiences.

The A-GEM authors' code clips each experience's contribution at zero
(Omega += relu(omega / (Delta^2 + xi))); the paper does not. `clip_negative=True` gives
their variant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from agem.plugins.quadratic import QuadraticPenaltyPlugin, StepTracker, positive, snapshot

if TYPE_CHECKING:
    from agem.template import BaseTemplate


class SIPlugin(QuadraticPenaltyPlugin):
    """Synaptic Intelligence (path integral).

    Args:
        si_lambda: the penalty's weight lambda >= 0 (the paper's c).
        si_xi: the damping xi > 0 of the importance's denominator.
        clip_negative: clip each experience's importance at zero (the A-GEM authors' code).
    """

    label = "SI"

    def __init__(
        self, *, si_lambda: float = 0.01, si_xi: float = 1e-3, clip_negative: bool = False
    ) -> None:
        super().__init__(si_lambda, option="si_lambda")
        self.si_xi = positive("si_xi", si_xi)
        self.clip_negative = bool(clip_negative)
        self.tracker = StepTracker()
        self._start: dict[str, torch.Tensor] = {}

    def settings(self) -> dict[str, Any]:
        return {"si_lambda": self.strength, "si_xi": self.si_xi, "clip": self.clip_negative}

    def before_training_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        super().before_training_exp(strategy, **kwargs)
        self.tracker.reset(strategy.model)
        self._start = snapshot(self.tracker.params)

    def observe_gradients(self, strategy: BaseTemplate) -> None:
        self.tracker.record()

    def after_update(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        self.tracker.path_step()

    def after_training_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Omega += omega / (Delta^2 + xi); the anchor becomes the current parameters."""
        importance = dict(self.importance)
        for n, p in self.tracker.params.items():
            delta = p.detach() - self._start[n]
            gain = self.tracker.omega[n] / (delta * delta + self.si_xi)
            if self.clip_negative:
                gain = gain.clamp_min(0)
            old = importance.get(n)
            importance[n] = gain if old is None or old.shape != gain.shape else old + gain
        self.importance = importance
        self.anchor = {**self.anchor, **snapshot(self.tracker.params)}
        self.tracker.reset(strategy.model)
