"""GEM's memory gradients: one flattened loss gradient per past experience, as rows of G.

Two ways, with the same result to float round-off:

- `loop`: one forward and backward pass per past experience, on its whole memory.
- `batched`: one forward pass over every past memory at once and one backward pass of
  the sum of the per-experience losses down to each Linear layer's output; the gradient
  of experience k's loss with respect to a Linear layer is then exact from the layer's
  inputs X and output gradients D restricted to k's patterns: dW_k = D_k^T X_k and
  db_k = sum of the rows of D_k (one batched matrix product per layer). Each pattern's
  output gradient is that of its own experience's loss, since a pattern's output depends
  on no other pattern. This needs every trainable parameter in a Linear layer that is
  called once per forward pass on all the patterns (an MLP; not a multi-head model,
  whose heads each see their task's patterns only), and no BatchNorm layer (whose batch
  statistics would mix the experiences' patterns); otherwise the loop is used.

`auto` takes the batched pass from `BATCHED_FROM` past experiences on (measured in
BENCHMARKS.md: with one past experience both do the same work and the loop has less
overhead).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from agem.plugins.mas import _linear_layers
from agem.plugins.memory import BatchNorm

if TYPE_CHECKING:
    from agem.core.template import BaseTemplate

Memory = tuple[Tensor, Tensor, Tensor]
METHODS = ("auto", "loop", "batched")
BATCHED_FROM = 2


def loop_gradients(
    strategy: BaseTemplate, params: list[nn.Parameter], memories: list[Memory], G: Tensor
) -> None:
    """Fill row k of G with the flattened gradient of memory k's loss (a missing one as 0)."""
    for row, (x, y, t) in enumerate(memories):
        loss = strategy.criterion(strategy.forward(x, t), y)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        offset = 0
        for p, grad in zip(params, grads, strict=True):
            n = p.numel()
            if grad is None:
                G[row, offset : offset + n].zero_()
            else:
                G[row, offset : offset + n].copy_(grad.reshape(-1))
            offset += n


class BatchedGradients:
    """The batched pass for one model and one set of memories (see the module docstring).

    `applies(model, params)` says whether the model qualifies; `__call__` returns False
    (writing nothing) if a forward pass turns out not to call each layer once on all the
    patterns (then and on every later call, without trying again), and the caller falls
    back to the loop.
    """

    def __init__(self, memories: list[Memory]) -> None:
        self.sizes = [int(m[1].shape[0]) for m in memories]
        self.x = torch.cat([m[0] for m in memories])
        self.y = torch.cat([m[1] for m in memories])
        self.t = torch.cat([m[2] for m in memories])
        self.equal = len(set(self.sizes)) == 1
        self.failed = False
        if not self.equal:  # where each pattern goes in a [K, max size] padded layout
            k, n = len(self.sizes), max(self.sizes)
            device = self.y.device
            self.task = torch.repeat_interleave(
                torch.arange(k, device=device), torch.tensor(self.sizes, device=device)
            )
            starts = torch.tensor([0, *self.sizes[:-1]], device=device).cumsum(0)
            self.pos = torch.arange(self.y.shape[0], device=device) - starts[self.task]
            self.padded = (k, n)

    @staticmethod
    def applies(model: nn.Module, params: list[nn.Parameter]) -> dict[str, nn.Linear]:
        """The model's Linear layers if the batched pass applies, else {}."""
        if any(isinstance(m, BatchNorm) for m in model.modules()):
            return {}
        return _linear_layers(model, {str(i): p for i, p in enumerate(params)})

    def _per_task(self, rows: Tensor) -> Tensor:
        """[N, F] rows of all patterns -> [K, n, F], padded with zero rows."""
        if self.equal:
            return rows.reshape(len(self.sizes), -1, rows.shape[-1])
        out = rows.new_zeros(*self.padded, rows.shape[-1])
        out[self.task, self.pos] = rows
        return out

    def __call__(
        self,
        strategy: BaseTemplate,
        linears: dict[str, nn.Linear],
        params: list[nn.Parameter],
        G: Tensor,
    ) -> bool:
        if self.failed:
            return False
        seen: dict[str, list[tuple[Tensor, Tensor]]] = {}

        def hook(name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
            def record(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
                seen.setdefault(name, []).append((args[0], out))

            return record

        handles = [m.register_forward_hook(hook(n)) for n, m in linears.items()]
        try:
            out = strategy.forward(self.x, self.t)
        finally:
            for h in handles:
                h.remove()
        rows = self.y.shape[0]
        names = [n for n, calls in seen.items() if calls[0][1].requires_grad]
        if any(
            len(seen[n]) != 1 or seen[n][0][0].dim() != 2 or seen[n][0][0].shape[0] != rows
            for n in names
        ):
            self.failed = True
            return False
        loss = torch.stack(
            [
                strategy.criterion(o, y)
                for o, y in zip(out.split(self.sizes), self.y.split(self.sizes), strict=True)
            ]
        ).sum()
        outs = torch.autograd.grad(loss, [seen[n][0][1] for n in names], allow_unused=True)
        per_param: dict[int, Tensor] = {}
        for name, d in zip(names, outs, strict=True):
            layer = linears[name]
            if d is None:
                continue
            D = self._per_task(d.detach())
            if layer.weight.requires_grad:
                X = self._per_task(seen[name][0][0].detach())
                per_param[id(layer.weight)] = D.transpose(1, 2) @ X
            if layer.bias is not None and layer.bias.requires_grad:
                per_param[id(layer.bias)] = D.sum(1)
        offset = 0
        for p in params:
            n = p.numel()
            grad = per_param.get(id(p))
            if grad is None:
                G[:, offset : offset + n].zero_()
            else:
                G[:, offset : offset + n].copy_(grad.reshape(len(self.sizes), n))
            offset += n
        return True
