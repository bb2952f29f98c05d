"""Progressive networks: the forward pass is eq. 1 of the paper, only the current task's
column trains, and every earlier column's output stays bit-identical afterwards."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import agem
from agem.benchmarks import from_tensors
from agem.models import ProgressiveNet


def _bench(n_exp: int = 3, n: int = 40) -> Any:
    gen = torch.Generator().manual_seed(0)
    train = []
    for e in range(n_exp):
        x = torch.randn(n, 1, 2, 3, generator=gen)  # flattened by the model
        y = torch.randint(0, 3, (n,), generator=gen)
        train.append((x, y, e))
    return from_tensors(train=train, test=train)


def _strategy(model: ProgressiveNet, **kw: Any) -> agem.PNN:
    # momentum and weight decay would move a frozen column if it got a gradient
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    return agem.PNN(model, opt, train_mb_size=8, train_epochs=2, evaluator=False, seed=0, **kw)


def test_forward_is_columns_with_laterals_from_earlier_hidden_layers() -> None:
    torch.manual_seed(0)
    net = ProgressiveNet(4, (5, 3), 2, initial_task_labels=(0, 1))
    x = torch.randn(7, 4)
    c0, c1 = net.column(0), net.column(1)
    w = [layer.weight for layer in c0.layers]  # type: ignore[union-attr]
    b = [layer.bias for layer in c0.layers]  # type: ignore[union-attr]
    h1 = torch.relu(x @ w[0].T + b[0])
    h2 = torch.relu(h1 @ w[1].T + b[1])
    torch.testing.assert_close(net(x, 0), h2 @ w[2].T + b[2])
    v = [layer.weight for layer in c1.layers]  # type: ignore[union-attr]
    c = [layer.bias for layer in c1.layers]  # type: ignore[union-attr]
    u = [group[0].weight for group in c1.laterals]  # type: ignore[union-attr]
    assert all(group[0].bias is None for group in c1.laterals)  # type: ignore[union-attr]
    g1 = torch.relu(x @ v[0].T + c[0])  # no lateral into the first layer
    g2 = torch.relu(g1 @ v[1].T + c[1] + h1 @ u[0].T)
    out1 = g2 @ v[2].T + c[2] + h2 @ u[1].T
    torch.testing.assert_close(net(x, 1), out1)
    # a mixed minibatch gives each sample its task's column
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    mixed = net(x, labels)
    torch.testing.assert_close(mixed[labels == 0], net(x[labels == 0], 0))
    torch.testing.assert_close(mixed[labels == 1], net(x[labels == 1], 1))


def test_column_k_has_k_laterals_per_layer_after_the_first() -> None:
    net = ProgressiveNet(4, (5, 3), 2, initial_task_labels=(0, 1, 2))
    for k, t in enumerate(net.task_labels):
        laterals = net.column(t).laterals  # type: ignore[union-attr]
        assert [len(group) for group in laterals] == [k, k]  # type: ignore[arg-type]


def test_earlier_columns_are_bit_identical_after_later_tasks() -> None:
    torch.manual_seed(0)
    bench = _bench()
    net = ProgressiveNet(6, (8, 8), 3)
    s = _strategy(net)
    probe = torch.randn(16, 6)
    outputs: dict[int, torch.Tensor] = {}
    for exp in bench.train_stream:
        before = {t: net(probe, t).detach().clone() for t in outputs}
        s.train(exp)
        t = exp.task_label
        assert s.pnn_plugin.trained[-1] == t
        assert not any(p.requires_grad for p in net.column(t).parameters())
        for old, out in before.items():
            assert torch.equal(net(probe, old), out), f"column {old} changed while {t} trained"
            assert torch.equal(outputs[old], out)
        outputs[t] = net(probe, t).detach().clone()
    assert sorted(outputs) == [0, 1, 2]
    assert len(s.optimizer.param_groups) == 3  # each new column's parameters were added


def test_only_the_current_column_trains() -> None:
    torch.manual_seed(0)
    bench = _bench(2)
    net = ProgressiveNet(6, (8,), 3, initial_task_labels=(0, 1))
    s = _strategy(net)
    seen: list[set[int]] = []

    class Probe(agem.plugins.Plugin):
        order = 10

        def after_backward(self, strategy: agem.BaseTemplate, **kwargs: Any) -> None:
            seen.append(
                {t for t in net.task_labels if net.column(t).layers[0].weight.grad is not None}
            )  # type: ignore[union-attr]

    s.plugins.append(Probe())
    s.train(bench.train_stream[0])
    assert seen and all(x == {0} for x in seen)
    seen.clear()
    s.train(bench.train_stream[1])
    assert seen and all(x == {1} for x in seen)


def test_a_task_trains_once_and_the_model_must_be_progressive() -> None:
    bench = _bench(1)
    net = ProgressiveNet(6, (8,), 3)
    s = _strategy(net)
    s.train(bench.train_stream[0])
    with pytest.raises(ValueError, match="task 0 was trained"):
        s.train(bench.train_stream[0])
    mlp = nn.Linear(6, 3)
    with pytest.raises(TypeError, match="ProgressiveNet"):
        agem.PNN(mlp, torch.optim.SGD(mlp.parameters(), lr=0.1))


def test_checkpoint_regrows_the_columns_in_their_order() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    items = [
        (torch.randn(20, 6, generator=gen), torch.randint(0, 3, (20,), generator=gen), t)
        for t in (2, 0)
    ]  # columns made in the order 0 (initial), 2
    bench = from_tensors(train=items, test=items)
    net = ProgressiveNet(6, (8,), 3)
    s = _strategy(net)
    s.train(bench.train_stream[0])
    assert net.task_labels == [0, 2]
    state = s.state_dict()

    torch.manual_seed(5)
    fresh = ProgressiveNet(6, (8,), 3)
    other = _strategy(fresh)
    other.load_state_dict(state)
    assert fresh.task_labels == [0, 2] and other.pnn_plugin.trained == [2]
    probe = torch.randn(4, 6)
    for t in (0, 2):
        assert torch.equal(fresh(probe, t), net(probe, t))
    s.train(bench.train_stream[1])
    other.train(bench.train_stream[1])
    for t in (0, 2):
        assert torch.equal(fresh(probe, t), net(probe, t))
