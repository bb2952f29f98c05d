"""`QuadraticPenaltyPlugin`: the base of the importance-weighted quadratic penalties
(SI, MAS, RWalk and the running-Fisher EWC), and the tools they share.

Each of these methods keeps one importance Omega_i and one anchor theta*_i per parameter
and adds, while later experiences are trained,

    strength * sum_i Omega_i (theta_i - theta*_i)^2

to the loss. Importances of several experiences are merged into the one Omega when an
experience ends, so a training iteration costs the same however many experiences came
before. Parameters created after the last update (new task heads) carry no penalty.

The penalty's value is added to `strategy.loss` (so logs and divergence checks see it),
but its gradient, 2 strength Omega (theta - theta*), is added to the parameters' `.grad`
in `after_backward`, after the backward pass of the task loss. So a method that needs the
gradient of the task loss alone (the path integral of SI and RWalk, the running Fisher)
reads it exactly, without a second backward pass. Parameters that got no gradient in a
step (heads of tasks absent from the minibatch) get none from the penalty either: the
optimizer does not move them, so they stay at their anchor.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from agem.core.plugin import Plugin, check_settings

if TYPE_CHECKING:
    from agem.core.template import BaseTemplate

ParamDict = dict[str, Tensor]

#: the A-GEM authors' constant in min-max normalisation, kept so that all-equal scores
#: normalise to zeros rather than to NaNs
NORMALISE_EPS = 1e-32


def non_negative(name: str, value: Any) -> float:
    """`value` as a float, if it is a finite number >= 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def positive(name: str, value: Any) -> float:
    """`value` as a float, if it is a finite number > 0."""
    if non_negative(name, value) == 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    """The model's parameters that require gradients, by name."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def snapshot(params: dict[str, nn.Parameter]) -> ParamDict:
    """Detached copies of the parameters' current values."""
    return {n: p.detach().clone() for n, p in params.items()}


def min_max_normalised(values: ParamDict) -> ParamDict:
    """(v - min) / (max - min + eps), with min and max over all parameters together
    (the normalisation of RWalk and of the A-GEM authors' running-Fisher EWC)."""
    if not values:
        return {}
    low = torch.stack([v.min() for v in values.values()]).min()
    high = torch.stack([v.max() for v in values.values()]).max()
    scale = high - low + NORMALISE_EPS
    return {n: (v - low) / scale for n, v in values.items()}


#: one penalty term: (parameter, weight, anchor), the penalty being sum weight (p - anchor)^2
Term = tuple[nn.Parameter, Tensor, Tensor]


def penalty_value(terms: list[Term], diffs: list[Tensor]) -> Tensor:
    """sum over terms of sum_i w_i d_i^2, with d = theta - anchor (`diffs`, detached)."""
    sums = [(w * d * d).sum() for (_, w, _), d in zip(terms, diffs, strict=True)]
    return torch.stack(sums).sum()


def add_penalty_gradient(
    terms: list[Term], diffs: list[Tensor], scale: float, *, create: bool = False
) -> None:
    """Add scale * w * d to each term's parameter gradient, in place (the gradient of
    scale/2 * `penalty_value`). A parameter without a gradient gets none, or, with
    `create`, exactly that term (as autograd would give a penalty added to the loss)."""
    for (p, w, _), d in zip(terms, diffs, strict=True):
        if p.grad is not None:
            p.grad.addcmul_(w, d, value=scale)
        elif create:
            p.grad = w * d * scale


def _to(values: ParamDict, device: torch.device) -> ParamDict:
    return {n: v.to(device) for n, v in values.items()}


def _cpu(values: ParamDict) -> ParamDict:
    return {n: v.detach().cpu() for n, v in values.items()}


class QuadraticPenaltyPlugin(Plugin):
    """strength * sum_i importance_i (theta_i - anchor_i)^2, one term per parameter.

    Subclasses set `importance` and `anchor` (dicts by parameter name) when an experience
    ends, and may read the task loss's gradient in `observe_gradients` (called in
    `after_backward` before the penalty's gradient is added). Extra state to checkpoint is
    named in `_state_names` (each a dict of tensors by parameter name).
    """

    label = "penalty"  # the method's name in messages
    gradient_only = True  # the penalty's gradient is added in place (a fleet fires it)
    _state_names: tuple[str, ...] = ()

    def __init__(self, strength: float, *, option: str) -> None:
        self.strength = non_negative(option, strength)
        self.importance: ParamDict = {}
        self.anchor: ParamDict = {}
        self._terms: list[Term] = []
        self._diffs: list[Tensor] = []

    # ---- the penalty -----------------------------------------------------------------
    def penalty(self, model: nn.Module) -> Tensor | None:
        """The penalty's value at the model's current parameters (None if it has no term)."""
        total: Tensor | None = None
        params = dict(model.named_parameters())
        for n, w in self.importance.items():
            p = params.get(n)
            a = self.anchor.get(n)
            if p is None or a is None or p.shape != w.shape:
                continue
            term = (w * (p - a).pow(2)).sum()
            total = term if total is None else total + term
        return None if total is None else total * self.strength

    def _resolve(self, model: nn.Module) -> None:
        """The (parameter, importance, anchor) triples the penalty covers."""
        params = dict(model.named_parameters())
        self._terms = [
            (params[n], w, self.anchor[n])
            for n, w in self.importance.items()
            if n in params and n in self.anchor and params[n].shape == w.shape
        ]

    def observe_gradients(self, strategy: BaseTemplate) -> None:
        """Read the task loss's gradients (`.grad`, before the penalty's is added)."""

    # ---- hooks -----------------------------------------------------------------------
    def before_training(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Move the stored state to the training device (after a checkpoint load)."""
        device = strategy.device
        for name in ("importance", "anchor", *self._state_names):
            setattr(self, name, _to(getattr(self, name), device))

    def before_training_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        self._resolve(strategy.model)

    def before_backward(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Add the penalty's value to `strategy.loss` (its gradient follows in after_backward)."""
        self._diffs = []
        if self.strength == 0 or not self._terms or strategy.loss is None:
            return
        self._diffs = [p.detach() - a for p, _, a in self._terms]
        strategy.loss = strategy.loss + penalty_value(self._terms, self._diffs) * self.strength

    def after_backward(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Observe the task gradients, then add 2 strength Omega (theta - theta*) to them."""
        self.observe_gradients(strategy)
        if not self._diffs:
            return
        add_penalty_gradient(self._terms, self._diffs, 2 * self.strength)
        self._diffs = []

    # ---- checkpoints -----------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The options a checkpoint must have been made with."""
        return {"strength": self.strength}

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"settings": self.settings()}
        for name in ("importance", "anchor", *self._state_names):
            state[name] = _cpu(getattr(self, name))
        return state

    def check_state_dict(self, state: dict[str, Any]) -> None:
        """Refuse state saved with other settings or of another shape."""
        if not isinstance(state, dict):
            raise ValueError(f"checkpoint {self.label} state is malformed")
        check_settings(self.label, state.get("settings"), self.settings())
        for name in ("importance", "anchor", *self._state_names):
            value = state.get(name)
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, Tensor) for k, v in value.items()
            ):
                raise ValueError(f"checkpoint {self.label} {name} is missing or malformed")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.check_state_dict(state)
        for name in ("importance", "anchor", *self._state_names):
            setattr(self, name, dict(state[name]))
        self._terms = []


class StepTracker:
    """The gradient of the task loss and the parameters' change over each optimizer step,
    per trainable parameter: what the path integrals of SI and RWalk need.

    `record` (in after_backward) copies the gradient g and the parameters before the step;
    `path_step` (in after_update) adds -g * (theta_after - theta_before) to `omega`.
    Parameters without a gradient in a step are left out of it (they did not move).
    """

    def __init__(self) -> None:
        self.params: dict[str, nn.Parameter] = {}
        self.omega: ParamDict = {}
        self._grad: ParamDict = {}
        self._before: ParamDict = {}
        self._stepped: list[str] = []

    def reset(self, model: nn.Module) -> None:
        """Track the model's trainable parameters; zero the path integral."""
        self.params = trainable(model)
        self.omega = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self._grad = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self._before = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self._stepped = []

    def record(self) -> None:
        self._stepped = []
        for n, p in self.params.items():
            if p.grad is not None:
                self._grad[n].copy_(p.grad)
                self._before[n].copy_(p.detach())
                self._stepped.append(n)

    def gradients(self) -> list[tuple[str, Tensor]]:
        """The task-loss gradients recorded in this step, by parameter name."""
        return [(n, self._grad[n]) for n in self._stepped]

    def path_step(self) -> None:
        for n in self._stepped:
            before = self._before[n]
            before.sub_(self.params[n].detach())  # theta_before - theta_after = -delta
            self.omega[n].addcmul_(self._grad[n], before)


class RunningFisher:
    """The diagonal Fisher as a moving average over training (EWC++, Chaudhry et al. 2018):
    the squared task-loss gradients of every `every` steps are averaged, and then
    F <- (1 - alpha) F + alpha * that average. F starts at zero and runs over all
    experiences; the window restarts with each experience.
    """

    def __init__(self, *, alpha: float, every: int) -> None:
        if not 0 < alpha <= 1 or not math.isfinite(alpha):
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        self.alpha = float(alpha)
        self.every = positive_int("every", every)
        self.fisher: ParamDict = {}
        self._window: ParamDict = {}
        self.count = 0

    def reset_window(self, params: dict[str, nn.Parameter]) -> None:
        for n, p in params.items():
            if n not in self.fisher or self.fisher[n].shape != p.shape:
                self.fisher[n] = torch.zeros_like(p.detach())
        self._window = {n: torch.zeros_like(p.detach()) for n, p in params.items()}
        self.count = 0

    def add(self, grads: list[tuple[str, Tensor]]) -> bool:
        """Add one step's squared gradients; True when the window is full."""
        for n, g in grads:
            self._window[n].addcmul_(g, g)
        self.count += 1
        return self.count >= self.every

    def update(self) -> None:
        """Fold the window's mean squared gradient into F; start a new window."""
        if self.count == 0:
            return
        for n, f in self.fisher.items():
            w = self._window.get(n)
            if w is None:
                continue
            f.mul_(1 - self.alpha).add_(w, alpha=self.alpha / self.count)
            w.zero_()
        self.count = 0
