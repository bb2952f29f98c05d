"""ReducedResNet18: shapes, parameter count, multi-head routing, training in a strategy."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import agem
from agem.benchmarks import from_tensors
from agem.models import MultiTaskModule, ReducedResNet18


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _expected_count(nf: int, c_in: int, classes: int) -> int:
    """Parameters of the layout by hand: stem, 8 BasicBlocks, 3 shortcuts, classifier."""

    def conv(a: int, b: int, k: int = 3) -> int:
        return a * b * k * k

    def bn(c: int) -> int:
        return 2 * c

    total = conv(c_in, nf) + bn(nf)
    widths = [nf, 2 * nf, 4 * nf, 8 * nf]
    prev = nf
    for i, w in enumerate(widths):
        total += conv(prev, w) + bn(w) + conv(w, w) + bn(w)  # first block
        if i > 0:
            total += conv(prev, w, 1) + bn(w)  # 1x1 shortcut
        total += 2 * (conv(w, w) + bn(w))  # second block
        prev = w
    return total + prev * classes + classes


def test_parameter_count() -> None:
    model = ReducedResNet18(10)
    assert _count(model) == _expected_count(20, 3, 10) == 1_094_750
    assert _count(ReducedResNet18(10, nf=64)) == 11_173_962  # the full CIFAR ResNet-18
    assert _count(ReducedResNet18(100, in_channels=1)) == _expected_count(20, 1, 100)


@pytest.mark.parametrize(("size", "channels"), [(32, 3), (28, 1), (8, 3)])
def test_output_shapes(size: int, channels: int) -> None:
    model = ReducedResNet18(7, nf=4, in_channels=channels)
    out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, 7)
    assert model.features(torch.randn(2, channels, size, size)).shape == (2, 32)  # 8 nf


def test_multihead_routes_each_sample_to_its_task_head() -> None:
    torch.manual_seed(0)
    model = ReducedResNet18(5, nf=4, multihead=True).eval()
    assert isinstance(model, MultiTaskModule)
    model.adaptation([0, 1, 2])
    x = torch.randn(6, 3, 16, 16)
    t = torch.tensor([2, 0, 1, 1, 0, 2])
    out = model(x, t)
    feats = model.features(x)
    heads = model.classifier.heads
    for i in range(6):
        torch.testing.assert_close(out[i], heads[str(int(t[i]))](feats[i : i + 1])[0])
    with pytest.raises(ValueError, match="task_labels"):
        model(x)


def test_single_head_ignores_task_labels() -> None:
    model = ReducedResNet18(4, nf=4).eval()
    x = torch.randn(3, 3, 8, 8)
    torch.testing.assert_close(model(x, torch.tensor([0, 1, 2])), model(x))


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        ReducedResNet18(0)
    with pytest.raises(ValueError, match="nf"):
        ReducedResNet18(10, nf=0)
    with pytest.raises(ValueError, match="images"):
        ReducedResNet18(10, nf=2)(torch.randn(2, 3 * 8 * 8))


def test_trains_with_a_head_per_task() -> None:
    gen = torch.Generator().manual_seed(0)
    train = [
        (torch.randn(12, 3, 8, 8, generator=gen), torch.randint(0, 2, (12,), generator=gen), t)
        for t in range(2)
    ]
    bm = from_tensors(train=train, test=train)
    model = ReducedResNet18(2, nf=2, multihead=True)
    s = agem.GEM(
        model,
        torch.optim.SGD(model.parameters(), lr=0.05),
        patterns_per_experience=6,
        train_mb_size=4,
        eval_mb_size=12,
        seed=0,
    )
    for exp in bm.train_stream:
        s.train(exp)
        s.eval(bm.test_stream)
    assert model.classifier.task_labels == [0, 1]
    assert len(s.evaluator.accuracy_matrix()) == 2
