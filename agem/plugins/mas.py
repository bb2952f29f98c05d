"""`MASPlugin`: Memory Aware Synapses (Aljundi et al., ECCV 2018).

When an experience ends, each parameter's importance is the mean over the experience's
training samples of the magnitude of the gradient of the squared L2 norm of the
network's output (its logits, for the sample's task head), at the learned parameters:

    Omega_i = (1/N) sum_n | d ||f(x_n; theta)||_2^2 / d theta_i |

per sample, as the paper defines it (eq. 4). No labels are used. Importances are
accumulated over experiences (Omega <- Omega + Omega_k, as in the paper and its authors'
code), and the anchor theta* becomes the current parameters; later experiences add

    lambda * sum_i Omega_i (theta_i - theta*_i)^2

to the loss (`agem.plugins.quadratic`). One Omega, one anchor: flat cost per step.

The A-GEM authors' code differs in two ways, each an option: it takes the magnitude of
the gradient of a minibatch of 10 samples' summed norms rather than of each sample's
(`per_sample=False`; a lower bound of the per-sample mean), and it keeps only the last
experience's importance (`accumulate=False`).

Per-sample magnitudes never form per-sample gradients for models whose trainable
parameters all sit in Linear layers: for y = x W^T + b, sum_n |dL_n/dW| = |G|^T |X| and
sum_n |dL_n/db| = sum_n |G_n| exactly (G the output gradients, X the inputs). Other models
use torch.func (vmap of grad), or a loop over samples where vmap cannot be used.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from agem.batching import batches
from agem.plugins.quadratic import ParamDict, QuadraticPenaltyPlugin, snapshot, trainable

if TYPE_CHECKING:
    from agem.template import BaseTemplate

#: the A-GEM authors' minibatch for the importance, with per_sample=False
AUTHORS_BATCH = 10
_CHUNK = 256


def _squared_norm(out: Tensor, _: Tensor | None = None) -> Tensor:
    return out.pow(2).sum()


def _linear_layers(model: nn.Module, params: dict[str, nn.Parameter]) -> dict[str, nn.Linear]:
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    owned = {id(p) for m in linears.values() for p in m.parameters(recurse=False)}
    if not linears or any(id(p) not in owned for p in params.values()):
        return {}
    return linears


def _linear_chunk(
    strategy: BaseTemplate, linears: dict[str, nn.Linear], total: ParamDict, x: Tensor, t: Tensor
) -> bool:
    """Add sum_n |per-sample gradient| of a chunk from each Linear layer's inputs and
    output gradients; False (adding nothing) if a layer is not called once on 2-d inputs."""
    seen: dict[str, list[tuple[Tensor, Tensor]]] = {}

    def hook(name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def record(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            seen.setdefault(name, []).append((args[0], out))

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in linears.items()]
    try:
        with torch.enable_grad():
            out = strategy.forward(x, t)
            names = [n for n, calls in seen.items() if calls[0][1].requires_grad]
            if any(len(seen[n]) != 1 or seen[n][0][0].dim() != 2 for n in names):
                return False
            grads = torch.autograd.grad(
                _squared_norm(out), [seen[n][0][1] for n in names], allow_unused=True
            )
    finally:
        for h in handles:
            h.remove()
    for name, g in zip(names, grads, strict=True):
        if g is None:
            continue
        prefix = f"{name}." if name else ""
        g_abs = g.detach().abs()
        if prefix + "weight" in total:
            total[prefix + "weight"] += g_abs.T @ seen[name][0][0].detach().abs()
        if prefix + "bias" in total:
            total[prefix + "bias"] += g_abs.sum(0)
    return True


def _vmap_chunk(
    strategy: BaseTemplate, params: dict[str, nn.Parameter], total: ParamDict, x: Tensor, t: Tensor
) -> None:
    from agem.plugins.ewc import _per_sample_fn

    names = list(params)
    per_sample = _per_sample_fn(strategy.model, _squared_norm, names)
    grads = per_sample({n: p.detach() for n, p in params.items()}, x, t, t)
    for n in names:
        total[n] += grads[n].abs().sum(0)


def _batch_chunk(
    strategy: BaseTemplate, params: dict[str, nn.Parameter], total: ParamDict, x: Tensor, t: Tensor
) -> None:
    """Add |gradient of the summed norms| of `x` taken as one minibatch (or sample by
    sample when `x` holds one sample)."""
    with torch.enable_grad():
        grads = torch.autograd.grad(
            _squared_norm(strategy.forward(x, t)), list(params.values()), allow_unused=True
        )
    for n, g in zip(params, grads, strict=True):
        if g is not None:
            total[n] += g.abs()


def output_norm_importance(
    strategy: BaseTemplate,
    dataset: Dataset[Any],
    *,
    per_sample: bool = True,
    default_task: int = 0,
    num_workers: int = 0,
) -> ParamDict:
    """MAS importance of `strategy.model`'s trainable parameters on `dataset`:
    (1/N) sum_n |d ||f(x_n)||^2 / d theta| per sample, or, with `per_sample=False`, the
    magnitudes of minibatches of `AUTHORS_BATCH` samples' summed gradients, over N."""
    model = strategy.model
    params = trainable(model)
    total = {
        n: torch.zeros_like(p, memory_format=torch.contiguous_format) for n, p in params.items()
    }
    if not params:
        return total
    method = "linear" if per_sample and _linear_layers(model, params) else "vmap"
    linears = _linear_layers(model, params) if method == "linear" else {}
    size = _CHUNK if per_sample else AUTHORS_BATCH
    was_training = model.training
    model.eval()
    count = 0
    try:
        for x, _, t in batches(
            dataset,
            size,
            shuffle=False,
            generator=None,
            device=strategy.device,
            num_workers=num_workers,
            default_task=default_task,
        ):
            count += int(x.shape[0])
            if not per_sample:
                _batch_chunk(strategy, params, total, x, t)
                continue
            if method == "linear" and _linear_chunk(strategy, linears, total, x, t):
                continue
            if method != "loop":
                try:
                    _vmap_chunk(strategy, params, total, x, t)
                    method = "vmap"
                    continue
                except (RuntimeError, NotImplementedError, ValueError) as err:
                    warnings.warn(
                        f"MAS: torch.func cannot compute per-sample gradients of this model "
                        f"({type(err).__name__}: {err}); looping over samples",
                        stacklevel=2,
                    )
                    method = "loop"
            for i in range(int(x.shape[0])):
                _batch_chunk(strategy, params, total, x[i : i + 1], t[i : i + 1])
    finally:
        model.train(was_training)
    return {n: v / max(count, 1) for n, v in total.items()}


class MASPlugin(QuadraticPenaltyPlugin):
    """Memory Aware Synapses.

    Args:
        mas_lambda: the penalty's weight lambda >= 0.
        per_sample: the paper's per-sample gradient magnitudes (True) or the A-GEM
            authors' magnitudes of 10-sample minibatch gradients (False).
        accumulate: sum the importances of all experiences (the paper) or keep the last
            one only (the A-GEM authors' code).
    """

    label = "MAS"

    def __init__(
        self, *, mas_lambda: float = 0.1, per_sample: bool = True, accumulate: bool = True
    ) -> None:
        super().__init__(mas_lambda, option="mas_lambda")
        self.per_sample = bool(per_sample)
        self.accumulate = bool(accumulate)

    def settings(self) -> dict[str, Any]:
        return {
            "mas_lambda": self.strength,
            "per_sample": self.per_sample,
            "accumulate": self.accumulate,
        }

    def after_training_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Add the experience's importance; the anchor becomes the current parameters."""
        exp = strategy.experience
        if exp is None:
            return
        new = output_norm_importance(
            strategy,
            exp.dataset,
            per_sample=self.per_sample,
            default_task=max(exp.task_label, 0),
            num_workers=int(kwargs.get("num_workers", 0)),
        )
        importance = dict(self.importance) if self.accumulate else {}
        for n, w in new.items():
            old = importance.get(n)
            importance[n] = w if old is None or old.shape != w.shape else old + w
        self.importance = importance
        self.anchor = {**self.anchor, **snapshot(trainable(strategy.model))}
