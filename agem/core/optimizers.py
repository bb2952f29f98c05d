"""`SGD`, `Adam` and `AdamW`: torch's optimizers, without importing `torch._dynamo`.

torch marks `Optimizer.add_param_group`, `zero_grad`, `state_dict` and
`load_state_dict` as not to be traced by `torch.compile` (`torch._disable_dynamo`), and
wraps each `step` in a function that switches gradients off and inserts two graph breaks
for the compiler. Both import `torch._dynamo` on first use: with sympy and parts of
`torch.distributed`, about 2 s on a 2-core machine, more than importing torch itself,
for code that does nothing outside `torch.compile`.

These subclasses run torch's own code for every method (the function each decorator
wraps, `__wrapped__`), so their arithmetic, state dicts and hooks are torch's: `step`
still runs the optimizer's pre- and post-step hooks (torch adds them to any subclass),
under `torch.no_grad()` unless `differentiable=True`, as torch's wrapper does. What
they leave out is only the compiler's bookkeeping: do not pass them to `torch.compile`
(use torch's classes there). `agem run` builds these; the library accepts any
`torch.optim.Optimizer`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch.optim import Optimizer

_F = TypeVar("_F", bound=Callable[..., Any])


def _plain(function: _F) -> _F:
    """The function a torch decorator wraps (itself when undecorated)."""
    plain: _F = getattr(function, "__wrapped__", function)
    return plain


def _plain_step(cls: type[Optimizer]) -> Callable[..., Any]:
    """The undecorated `step` of torch's optimizer class `cls` (AdamW's is Adam's)."""
    owner = next(klass for klass in cls.__mro__ if "step" in vars(klass))
    return _plain(vars(owner)["step"])


class _Eager:
    """The methods that torch would route through `torch._dynamo`, as their plain code."""

    add_param_group = _plain(Optimizer.add_param_group)
    zero_grad = _plain(Optimizer.zero_grad)
    state_dict = _plain(Optimizer.state_dict)
    load_state_dict = _plain(Optimizer.load_state_dict)


def _step(plain: Callable[..., Any]) -> Callable[..., Any]:
    """A `step` that runs `plain` as torch's wrapper does, without the graph breaks."""

    def step(self: Optimizer, closure: Callable[[], float] | None = None) -> Any:
        with torch.set_grad_enabled(bool(self.defaults.get("differentiable", False))):
            return plain(self, closure)

    step.__doc__ = plain.__doc__
    return step


class SGD(_Eager, torch.optim.SGD):
    """`torch.optim.SGD` that does not import `torch._dynamo` (see the module)."""

    step = _step(_plain_step(torch.optim.SGD))


class Adam(_Eager, torch.optim.Adam):
    """`torch.optim.Adam` that does not import `torch._dynamo` (see the module)."""

    step = _step(_plain_step(torch.optim.Adam))


class AdamW(_Eager, torch.optim.AdamW):
    """`torch.optim.AdamW` that does not import `torch._dynamo` (see the module)."""

    step = _step(_plain_step(torch.optim.AdamW))
