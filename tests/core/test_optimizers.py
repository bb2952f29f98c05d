"""agem's SGD, Adam and AdamW are torch's, bit for bit, without importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from agem.core import optimizers
from tests.helpers.runs import env

CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3, "nesterov": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "dampening": 0.1, "maximize": True}),
    ("Adam", {"lr": 1e-2, "weight_decay": 1e-2}),
    ("Adam", {"lr": 1e-2, "amsgrad": True}),
    ("AdamW", {"lr": 1e-2, "weight_decay": 0.1}),
]


def _train(cls: type[torch.optim.Optimizer], options: dict) -> tuple[list, dict, list]:
    """Ten steps on a tiny model (a head added half-way); the parameters, the state
    dict and the order in which the step hooks ran."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    extra = torch.nn.Linear(8, 3)
    optimizer = cls(model.parameters(), **options)
    calls: list[str] = []
    optimizer.register_step_pre_hook(lambda *_: calls.append("pre"))
    optimizer.register_step_post_hook(lambda *_: calls.append("post"))
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    for step in range(10):
        if step == 5:
            optimizer.add_param_group({"params": list(extra.parameters())})
        optimizer.zero_grad(set_to_none=True)
        hidden = model[1](model[0](x))
        loss = torch.nn.functional.cross_entropy(model[2](hidden) + extra(hidden), y)
        loss.backward()
        optimizer.step()
    params = [p.detach().clone() for p in [*model.parameters(), *extra.parameters()]]
    return params, optimizer.state_dict(), calls


def _same_state(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return (
            isinstance(b, dict) and a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
        )
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_state(x, y) for x, y in zip(a, b))  # type: ignore[arg-type]
    return a == b


@pytest.mark.parametrize(("name", "options"), CASES)
def test_bit_identical_to_torch(name: str, options: dict) -> None:
    ours = _train(getattr(optimizers, name), options)
    theirs = _train(getattr(torch.optim, name), options)
    assert all(torch.equal(a, b) for a, b in zip(ours[0], theirs[0], strict=True))
    assert _same_state(ours[1], theirs[1])
    assert ours[2] == theirs[2] == ["pre", "post"] * 10


@pytest.mark.parametrize(("name", "options"), CASES[1::2])
def test_state_dicts_load_both_ways(name: str, options: dict) -> None:
    params = [torch.nn.Parameter(torch.randn(4))]
    saved = _train(getattr(torch.optim, name), options)[1]
    for cls in (getattr(optimizers, name), getattr(torch.optim, name)):
        model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
        optimizer = cls(model.parameters(), **options)
        optimizer.add_param_group({"params": list(torch.nn.Linear(8, 3).parameters())})
        optimizer.load_state_dict(saved)
        assert _same_state(optimizer.state_dict(), saved)
    assert isinstance(getattr(optimizers, name)(params, **options), getattr(torch.optim, name))


_PROBE = """
import sys
import torch
from agem.core import optimizers
module = torch.optim if sys.argv[1] == "torch" else optimizers
model = torch.nn.Linear(4, 2)
for name, options in (("SGD", {"momentum": 0.9}), ("Adam", {}), ("AdamW", {})):
    optimizer = getattr(module, name)(model.parameters(), lr=0.1, **options)
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    optimizer.load_state_dict(optimizer.state_dict())
print("torch._dynamo" in sys.modules)
"""


@pytest.mark.slow
@pytest.mark.parametrize(("which", "imported"), [("agem", "False"), ("torch", "True")])
def test_torch_dynamo_is_not_imported(which: str, imported: str) -> None:
    """(torch's own classes import it: the probe can tell.)"""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, which],
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [imported]
