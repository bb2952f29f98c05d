"""The default CPU thread count: one thread for small MLPs on the CPU, torch's otherwise."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import agem
from agem.runtime import SMALL_MODEL_PARAMETERS, apply_threads, default_threads


def test_small_mlp_on_cpu_gets_one_thread() -> None:
    model = agem.models.MLP(input_size=784, hidden_sizes=(256, 256), num_classes=10)
    assert default_threads(model, "cpu") == 1
    assert default_threads(model, torch.device("cpu")) == 1


def test_convolutional_large_or_gpu_models_keep_torch_default() -> None:
    conv = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.LazyLinear(10))
    assert default_threads(conv, "cpu") is None
    large = nn.Linear(SMALL_MODEL_PARAMETERS, 2)
    assert default_threads(large, "cpu") is None
    mlp = agem.models.MLP(input_size=64, hidden_sizes=(8,), num_classes=10)
    assert default_threads(mlp, "cuda") is None


def test_explicit_threads_override_the_rule() -> None:
    before = torch.get_num_threads()
    mlp = agem.models.MLP(input_size=64, hidden_sizes=(8,), num_classes=10)
    try:
        assert apply_threads(2, mlp, "cpu") == 2
        assert apply_threads(None, mlp, "cpu") == 1
        conv = nn.Sequential(nn.Conv2d(1, 2, 3))
        torch.set_num_threads(2)
        assert apply_threads(None, conv, "cpu") == 2  # left as it was
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            apply_threads(0, mlp, "cpu")
    finally:
        torch.set_num_threads(before)


def test_building_a_strategy_applies_the_rule_and_torch_set_num_threads_overrides_it() -> None:
    """The README's Python example trains on one thread, as `agem run` does."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        mlp = agem.models.MLP(input_size=64, hidden_sizes=(8,), num_classes=10)
        agem.Naive(mlp, torch.optim.SGD(mlp.parameters(), lr=0.1))
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)  # after building: the user's choice stands
        assert torch.get_num_threads() == 2
        conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.LazyLinear(10))
        agem.Naive(conv, torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1))
        assert torch.get_num_threads() == 2  # a convolutional model keeps torch's setting
    finally:
        torch.set_num_threads(before)
