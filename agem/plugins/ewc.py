"""`EWCPlugin`: Elastic Weight Consolidation (Kirkpatrick et al., PNAS 2017).

After an experience is learned, the diagonal of the empirical Fisher information is
estimated on that experience's training data at the learned parameters theta*:

    F_i = (1/N) sum_n (d/d theta_i  log p(y_n | x_n; theta*))^2

with per-sample gradients (one per training sample, with its true label; the model in
eval mode, so dropout is off and BatchNorm uses its running statistics). Per-sample
gradients are never formed for models whose trainable parameters all sit in Linear
layers (the sum of squares is exact from each layer's inputs and output gradients, at
the cost of one backward pass per chunk); other models use `torch.func` (vmap of grad)
in chunks, and a model that vmap cannot handle falls back to a loop over samples, with
a warning. See `fisher_diagonal`.

While later experiences are trained, the loss gains (its value in `before_backward`, its
gradient added to the gradients in `after_backward`)

    separate: lambda/2 sum_k sum_i F_k,i (theta_i - theta*_k,i)^2   (one term per past experience)
    online:   lambda/2 sum_i F~_i (theta_i - theta*_i)^2,  F~ <- decay_factor F~ + F_k,
              theta* = the parameters after the last experience (Schwarz et al., 2018).

The separate terms are merged into one quadratic per parameter (equal in value,
constant included, and in gradient), so a training iteration costs the same however
many experiences are stored. Parameters created after an experience (new task heads)
are not in its term. With
plain SGD the penalty is stable only while lr * lambda * sum_k F_k stays below about 2
per parameter; larger lambdas make training diverge.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from agem.core.batching import batches
from agem.core.plugin import Plugin, check_settings
from agem.models.multitask import MultiTaskModule
from agem.plugins.quadratic import Term, add_penalty_gradient, penalty_value

if TYPE_CHECKING:
    from agem.core.template import BaseTemplate

MODES = ("separate", "online")
_CHUNK_FLOATS = 2**25  # per-sample gradients held at once (128 MiB of float32)

ParamDict = dict[str, Tensor]


def _finite_non_negative(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


FISHER_METHODS = ("auto", "linear", "vmap", "loop")


class _NotLinear(Exception):
    """The exact Linear-layer shortcut does not apply to this model."""


def _linear_modules(model: nn.Module, params: dict[str, nn.Parameter]) -> dict[str, nn.Linear]:
    """The model's Linear modules by name, if every trainable parameter belongs to one."""
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    owned = {id(p) for m in linears.values() for p in m.parameters(recurse=False)}
    if not linears or any(id(p) not in owned for p in params.values()):
        raise _NotLinear
    return linears


def _linear_chunk(
    strategy: BaseTemplate,
    linears: dict[str, nn.Linear],
    fisher: ParamDict,
    x: Tensor,
    y: Tensor,
    t: Tensor,
) -> None:
    """Add sum_n g_n^2 for a chunk, for models made of Linear layers, without per-sample
    gradients: for y = x W^T + b, sum_n (dl_n/dW)^2 = (G^2)^T (X^2) and sum_n (dl_n/db)^2
    = sum_n G_n^2, with X the layer's inputs and G = dl_n/dy_n its output gradients."""
    from torch.func import vmap

    inputs: dict[str, Tensor] = {}
    outputs: dict[str, Tensor] = {}
    calls: dict[str, int] = {}

    def hook(name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def record(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            inputs[name], outputs[name] = args[0], out

        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in linears.items()]
    criterion = strategy.criterion
    try:
        with torch.enable_grad():
            out = strategy.forward(x, t)
            try:
                losses = vmap(lambda o, c: criterion(o.unsqueeze(0), c.unsqueeze(0)))(out, y)
            except (RuntimeError, NotImplementedError, ValueError):
                raise _NotLinear from None
            names = [n for n in outputs if outputs[n].requires_grad]
            grads = torch.autograd.grad(
                losses.sum(), [outputs[n] for n in names], allow_unused=True
            )
    finally:
        for h in handles:
            h.remove()
    rows = int(y.shape[0])
    for name in names:  # check everything before adding anything
        a, o = inputs[name], outputs[name]
        # rows < batch: a layer that sees only some samples (a task's head in a
        # multi-head model); samples it does not see add nothing to its Fisher
        if calls[name] != 1 or a.dim() != 2 or o.dim() != 2 or a.shape[0] > rows:
            raise _NotLinear
    for name, g in zip(names, grads, strict=True):
        if g is None:
            continue
        prefix = f"{name}." if name else ""
        g2 = g.detach().pow(2)
        if prefix + "weight" in fisher:
            fisher[prefix + "weight"] += g2.T @ inputs[name].detach().pow(2)
        if prefix + "bias" in fisher:
            fisher[prefix + "bias"] += g2.sum(0)


def _per_sample_fn(
    model: nn.Module, criterion: Callable[[Tensor, Tensor], Tensor], names: list[str]
) -> Callable[[ParamDict, Tensor, Tensor, Tensor], ParamDict]:
    """vmap(grad(loss of one sample)) over a chunk, with the model's state as constants."""
    from torch.func import functional_call, grad, vmap

    frozen = {n: p.detach() for n, p in model.named_parameters() if n not in names}
    buffers = dict(model.named_buffers())
    multitask = isinstance(model, MultiTaskModule)

    def loss(params: ParamDict, x: Tensor, y: Tensor, t: Tensor) -> Tensor:
        args = (x.unsqueeze(0), t.unsqueeze(0)) if multitask else (x.unsqueeze(0),)
        out = functional_call(model, ({**params, **frozen}, buffers), args)
        return criterion(out, y.unsqueeze(0))

    return vmap(grad(loss), in_dims=(None, 0, 0, 0))


def _loop_chunk(
    strategy: BaseTemplate,
    params: dict[str, nn.Parameter],
    fisher: ParamDict,
    x: Tensor,
    y: Tensor,
    t: Tensor,
) -> None:
    """Add the squared per-sample gradients of a chunk, one sample at a time."""
    names = list(params)
    for i in range(y.shape[0]):
        with torch.enable_grad():
            loss = strategy.criterion(strategy.forward(x[i : i + 1], t[i : i + 1]), y[i : i + 1])
            grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for n, g in zip(names, grads, strict=True):
            if g is not None:
                fisher[n] += g.pow(2)


def fisher_diagonal(
    strategy: BaseTemplate,
    dataset: Dataset[Any],
    *,
    default_task: int = 0,
    num_workers: int = 0,
    method: str = "auto",
) -> ParamDict:
    """Diagonal empirical Fisher of `strategy.model` on `dataset`: the mean over samples
    of the squared per-sample gradient of `strategy.criterion`, per trainable parameter.

    `method`: "linear" (exact shortcut for models whose trainable parameters all belong
    to Linear layers on [batch, features] inputs: no per-sample gradients are formed),
    "vmap" (per-sample gradients with torch.func), "loop" (one backward per sample), or
    "auto": the first that applies, in that order (vmap failing gives a warning).
    """
    if method not in FISHER_METHODS:
        raise ValueError(f"method must be one of {FISHER_METHODS}, got {method!r}")
    model = strategy.model
    params = _trainable(model)
    if not params:
        return {}
    fisher = _FisherSums(strategy, params, method)
    was_training = model.training
    model.eval()
    try:
        for x, y, t in batches(
            dataset,
            fisher.chunk,
            shuffle=False,
            generator=None,
            device=strategy.device,
            num_workers=num_workers,
            default_task=default_task,
        ):
            fisher.add(x, y, t)
    finally:
        model.train(was_training)
    return fisher.mean()


class _FisherSums:
    """Sums of squared per-sample gradients, by the first of the linear shortcut, vmap
    and the per-sample loop that applies (each exact: a switch keeps earlier sums)."""

    def __init__(
        self, strategy: BaseTemplate, params: dict[str, nn.Parameter], method: str
    ) -> None:
        self.strategy = strategy
        self.params = params
        self.requested = method
        self.sums = {
            n: torch.zeros_like(p, memory_format=torch.contiguous_format) for n, p in params.items()
        }
        self.count = 0
        self.linears: dict[str, nn.Linear] = {}
        self.method = "vmap" if method == "auto" else method
        if method in ("auto", "linear"):
            try:
                self.linears = _linear_modules(strategy.model, params)
                self.method = "linear"
            except _NotLinear:
                if method == "linear":
                    raise ValueError(
                        "method 'linear' needs a model of Linear layers only"
                    ) from None
        n_params = sum(p.numel() for p in params.values())
        self.sub = max(1, min(1024, _CHUNK_FLOATS // n_params))  # per-sample gradients at once
        self.chunk = 1024 if self.method == "linear" else self.sub
        self.detached = {n: p.detach() for n, p in params.items()}
        self.per_sample = _per_sample_fn(strategy.model, strategy.criterion, list(params))

    def add(self, x: Tensor, y: Tensor, t: Tensor) -> None:
        """Add the squared per-sample gradients of one chunk of samples."""
        self.count += int(y.shape[0])
        if self.method == "linear" and self._add_linear(x, y, t):
            return
        for start in range(0, int(y.shape[0]), self.sub):
            part = slice(start, start + self.sub)
            xs, ys, ts = x[part], y[part], t[part]
            if self.method == "vmap" and self._add_vmap(xs, ys, ts):
                continue
            _loop_chunk(self.strategy, self.params, self.sums, xs, ys, ts)

    def _add_linear(self, x: Tensor, y: Tensor, t: Tensor) -> bool:
        """The linear shortcut; False (and vmap from now on) where it does not apply."""
        try:
            _linear_chunk(self.strategy, self.linears, self.sums, x, y, t)
            return True
        except _NotLinear:
            if self.requested == "linear":
                raise ValueError(
                    "method 'linear' does not apply: a Linear layer is called more "
                    "than once or on inputs that are not [batch, features]"
                ) from None
            self.method = "vmap"
            return False

    def _add_vmap(self, x: Tensor, y: Tensor, t: Tensor) -> bool:
        """Per-sample gradients with torch.func; False (and the loop from now on, with a
        warning) where torch.func cannot compute them."""
        try:
            grads = self.per_sample(self.detached, x, y, t)
        except (RuntimeError, NotImplementedError, ValueError) as err:
            warnings.warn(
                f"EWC: torch.func cannot compute per-sample gradients of this "
                f"model ({type(err).__name__}: {err}); looping over samples",
                stacklevel=4,
            )
            self.method = "loop"
            return False
        for n, g in grads.items():
            self.sums[n] += g.pow(2).sum(0)
        return True

    def mean(self) -> ParamDict:
        """The Fisher diagonal: the sums over the samples added."""
        return {n: f / max(self.count, 1) for n, f in self.sums.items()}


class EWCPlugin(Plugin):
    """Elastic Weight Consolidation with a diagonal empirical Fisher.

    The penalty's value is added to the loss in `before_backward` and its gradient,
    lambda F (theta - theta*), to the gradients in `after_backward` (no backward pass
    through the penalty): so a fleet can fire these hooks per member
    (`gradient_only`).

    Args:
        ewc_lambda: the penalty's weight lambda >= 0.
        mode: "separate" (one term per past experience) or "online" (one decayed term).
        decay_factor: online mode only (required there): F~ <- decay_factor F~ + F_k,
            in [0, 1].
    """

    gradient_only = True

    def __init__(
        self, ewc_lambda: float, mode: str = "separate", decay_factor: float | None = None
    ) -> None:
        self.ewc_lambda = _finite_non_negative("ewc_lambda", ewc_lambda)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "online":
            if decay_factor is None:
                raise ValueError("decay_factor is required in online mode (a number in [0, 1])")
            decay_factor = _finite_non_negative("decay_factor", decay_factor)
            if decay_factor > 1:
                raise ValueError(f"decay_factor must be in [0, 1], got {decay_factor}")
        elif decay_factor is not None:
            raise ValueError("decay_factor is only used in online mode; leave it None")
        self.mode = mode
        self.decay_factor = decay_factor
        self._step: tuple[list[Term], list[Tensor]] | None = None  # this step's terms
        # separate: experience index -> (Fisher, theta*); online: a single entry, key -1
        self.terms: dict[int, tuple[ParamDict, ParamDict]] = {}

    @property
    def terms(self) -> dict[int, tuple[ParamDict, ParamDict]]:
        """Stored (Fisher, theta*) pairs by experience (separate) or under key -1 (online).

        Read-only by convention: assign a new dict to change it (that resets the cache).
        """
        return self._terms

    @terms.setter
    def terms(self, value: dict[int, tuple[ParamDict, ParamDict]]) -> None:
        self._terms = value
        self._merged: dict[str, tuple[Tensor, Tensor, float]] | None = None

    def _merge(self) -> dict[str, tuple[Tensor, Tensor, float]]:
        """All terms as one quadratic per parameter: sum_k F_k (theta - a_k)^2 =
        A (theta - mu)^2 + c with A = sum F_k, mu = sum F_k a_k / A, c >= 0 (in float64).

        So the penalty costs the same per iteration however many terms there are.
        """
        if self._merged is not None:
            return self._merged
        merged: dict[str, tuple[Tensor, Tensor, float]] = {}
        names = list(dict.fromkeys(n for f, _ in self._terms.values() for n in f))
        for n in names:
            pairs = [(f[n], a[n]) for f, a in self._terms.values() if n in f]
            shape = pairs[-1][0].shape
            pairs = [(f, a) for f, a in pairs if f.shape == shape]
            F64 = [f.to(torch.float64) for f, _ in pairs]
            a64 = [a.to(torch.float64) for _, a in pairs]
            A = torch.stack(F64).sum(0)
            B = torch.stack([f * a for f, a in zip(F64, a64, strict=True)]).sum(0)
            C = torch.stack([f * a * a for f, a in zip(F64, a64, strict=True)]).sum(0)
            positive = A > 0
            safe = torch.where(positive, A, torch.ones_like(A))
            mu = torch.where(positive, B / safe, a64[-1])
            c = float(torch.where(positive, C - B * B / safe, torch.zeros_like(A)).sum())
            dtype = pairs[-1][0].dtype
            merged[n] = (A.to(dtype), mu.to(dtype), max(c, 0.0))
        self._merged = merged
        return merged

    def penalty(self, model: nn.Module) -> Tensor | None:
        """lambda/2 sum over terms of sum_i F_i (theta_i - theta*_i)^2, or None if no term."""
        if not self._terms:
            return None
        params = dict(model.named_parameters())
        total: Tensor | None = None
        for n, (A, mu, c) in self._merge().items():
            p = params.get(n)
            if p is None or p.shape != A.shape:
                continue
            term = (A * (p - mu).pow(2)).sum() + c
            total = term if total is None else total + term
        if total is None:
            return None
        return total * (self.ewc_lambda / 2)

    # ---- hooks ------------------------------------------------------------------
    def before_training(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Move stored terms to the training device (after a checkpoint load)."""
        device = strategy.device
        self.terms = {
            k: ({n: v.to(device) for n, v in f.items()}, {n: v.to(device) for n, v in a.items()})
            for k, (f, a) in self.terms.items()
        }

    def before_backward(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Add the penalty's value to `strategy.loss` (its gradient follows in after_backward)."""
        self._step = None
        if self.ewc_lambda == 0 or strategy.loss is None or not self._terms:
            return
        params = dict(strategy.model.named_parameters())
        terms: list[Term] = []
        constant = 0.0
        for n, (A, mu, c) in self._merge().items():
            p = params.get(n)
            if p is not None and p.shape == A.shape:
                terms.append((p, A, mu))
                constant += c
        if not terms:
            return
        diffs = [p.detach() - mu for p, _, mu in terms]
        self._step = (terms, diffs)
        value = penalty_value(terms, diffs) + constant
        strategy.loss = strategy.loss + value * (self.ewc_lambda / 2)

    def after_backward(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Add the penalty's gradient, lambda * F (theta - theta*), to the gradients."""
        if self._step is not None:
            add_penalty_gradient(*self._step, self.ewc_lambda, create=True)
            self._step = None

    def after_training_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Estimate the Fisher on the experience just learned and store theta*."""
        exp = strategy.experience
        if exp is None:
            return
        fisher = fisher_diagonal(
            strategy,
            exp.dataset,
            default_task=max(exp.task_label, 0),
            num_workers=int(kwargs.get("num_workers", 0)),
        )
        anchor = {n: p.detach().clone() for n, p in _trainable(strategy.model).items()}
        if self.mode == "separate":
            self.terms = {**self._terms, exp.current_experience: (fisher, anchor)}
            return
        assert self.decay_factor is not None
        old = self.terms.get(-1, ({}, {}))[0]
        for n, f in fisher.items():
            if n in old and old[n].shape == f.shape:
                f.add_(old[n], alpha=self.decay_factor)
        self.terms = {-1: (fisher, anchor)}

    # ---- checkpoints ------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "settings": self._settings(),
            "terms": {
                k: ({n: v.cpu() for n, v in f.items()}, {n: v.cpu() for n, v in a.items()})
                for k, (f, a) in self.terms.items()
            },
        }

    def _settings(self) -> dict[str, Any]:
        return {"ewc_lambda": self.ewc_lambda, "mode": self.mode, "decay_factor": self.decay_factor}

    def check_state_dict(self, state: dict[str, Any]) -> None:
        """Refuse terms saved with other settings."""
        check_settings("EWC", state.get("settings"), self._settings())
        if not isinstance(state.get("terms"), dict):
            raise ValueError("checkpoint EWC terms are malformed")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.check_state_dict(state)
        self.terms = {int(k): (dict(f), dict(a)) for k, (f, a) in state["terms"].items()}
