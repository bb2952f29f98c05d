"""BaseTemplate: hooks that change loss and gradients, eval without gradients, task-label
routing, and clear errors on bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import agem
import agem.core.hooks
from agem.benchmarks import Experience, TensorDataset, from_datasets, from_tensors
from agem.models import MultiTaskModule
from agem.plugins import Plugin

W0 = [[0.1, -0.2], [0.3, 0.4]]
X = [[1.0, 2.0], [-1.0, 0.5]]
Y = [0, 1]
LR = 0.5


def _linear() -> nn.Linear:
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(W0))
    return model


def _hand_grad() -> np.ndarray:
    """d(mean cross-entropy)/dW for logits = X W^T, computed without autograd."""
    x, w = np.array(X), np.array(W0)
    logits = x @ w.T
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    onehot = np.eye(2)[Y]
    return ((p - onehot) / len(Y)).T @ x


def _one_step(plugins: list[Any]) -> np.ndarray:
    model = _linear()
    strategy = agem.Naive(
        model, torch.optim.SGD(model.parameters(), lr=LR), train_mb_size=2, plugins=plugins, seed=0
    )
    data = (torch.tensor(X), torch.tensor(Y))
    strategy.train(from_tensors(train=[data], test=[data]).train_stream[0])
    return model.weight.detach().numpy().astype(np.float64)


def test_plain_update_matches_hand_computation() -> None:
    expected = np.array(W0) - LR * _hand_grad()
    np.testing.assert_allclose(_one_step([]), expected, atol=1e-6)


def test_loss_and_gradient_changed_by_hooks_change_the_update() -> None:
    class Scale(Plugin):
        def before_backward(self, strategy: Any, **kwargs: Any) -> None:
            strategy.loss = strategy.loss * 3.0

    class Shift(Plugin):
        def after_backward(self, strategy: Any, **kwargs: Any) -> None:
            for p in strategy.model.parameters():
                p.grad.add_(0.25)

    g = _hand_grad()
    np.testing.assert_allclose(_one_step([Scale()]), np.array(W0) - LR * 3 * g, atol=1e-6)
    np.testing.assert_allclose(_one_step([Shift()]), np.array(W0) - LR * (g + 0.25), atol=1e-6)
    both = np.array(W0) - LR * (3 * g + 0.25)
    np.testing.assert_allclose(_one_step([Scale(), Shift()]), both, atol=1e-6)


# ---- evaluation ---------------------------------------------------------------


def _bm(n: int = 6) -> agem.benchmarks.Benchmark:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 3, generator=g), torch.randint(0, 2, (n,), generator=g)
    return from_tensors(train=[(x, y), (x + 1, y)], test=[(x, y), (x + 1, y)])


class GradProbe(Plugin):
    """Checks, inside eval, that no autograd graph is built and the model is in eval mode."""

    def __init__(self) -> None:
        self.checked = 0

    def after_eval_forward(self, strategy: Any, **kwargs: Any) -> None:
        assert not torch.is_grad_enabled()
        assert strategy.mb_output.grad_fn is None and not strategy.mb_output.requires_grad
        assert not strategy.model.training and not strategy.is_training
        self.checked += 1


def _mlp_strategy(plugins: list[Any] | None = None) -> agem.Naive:
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    return agem.Naive(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=2,
        eval_mb_size=4,
        plugins=plugins,
        seed=0,
    )


def test_eval_creates_no_gradients_and_no_graph() -> None:
    probe = GradProbe()
    strategy = _mlp_strategy([probe])
    bm = _bm()
    strategy.eval(bm.test_stream)
    assert all(p.grad is None for p in strategy.model.parameters())
    assert probe.checked == 4  # 2 experiences x 2 minibatches

    strategy.train(bm.train_stream[0])
    grads = [p.grad for p in strategy.model.parameters()]
    values = [g.clone() for g in grads]
    metrics = strategy.eval(bm.test_stream)
    assert set(metrics) >= {"accuracy/exp0", "accuracy/exp1", "accuracy/stream"}
    for p, g, v in zip(strategy.model.parameters(), grads, values, strict=True):
        assert p.grad is g and torch.equal(p.grad, v)


@pytest.mark.parametrize("train_mode", [True, False])
def test_eval_restores_the_model_mode(train_mode: bool) -> None:
    strategy = _mlp_strategy()
    strategy.model.train(train_mode)
    strategy.eval(_bm().test_stream)
    assert all(m.training == train_mode for m in strategy.model.modules())
    assert strategy.is_training is False


def test_eval_restores_mixed_submodule_modes_and_survives_errors() -> None:
    strategy = _mlp_strategy()
    strategy.model.train()
    strategy.model[1].eval()  # e.g. a frozen layer
    strategy.eval(_bm().test_stream)
    assert [m.training for m in strategy.model] == [True, False, True]

    class Boom(Plugin):
        def after_eval_iteration(self, strategy: Any, **kwargs: Any) -> None:
            raise RuntimeError("boom")

    failing = _mlp_strategy([Boom()])
    failing.model.train()
    with pytest.raises(RuntimeError, match="boom"):
        failing.eval(_bm().test_stream)
    assert failing.model.training and all(m.training for m in failing.model.modules())
    assert torch.is_grad_enabled()


def test_train_puts_the_model_in_train_mode() -> None:
    seen: list[bool] = []

    class Mode(Plugin):
        def before_forward(self, strategy: Any, **kwargs: Any) -> None:
            seen.append(strategy.model.training and strategy.is_training)

    strategy = _mlp_strategy([Mode()])
    strategy.model.eval()
    strategy.train(_bm().train_stream[0])
    assert seen == [True] * 3
    assert strategy.is_training is False


# ---- task labels --------------------------------------------------------------


class TaskRecorder(MultiTaskModule):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor, task_labels: Tensor) -> Tensor:
        self.seen.append(task_labels.clone())
        return self.lin(x)


class PlainDataset(torch.utils.data.Dataset):
    """A map-style dataset that is not tensor-backed, yielding (x, y)."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.x[i], int(self.y[i])


def test_task_labels_reach_multitask_models() -> None:
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 1, 0])
    t = torch.tensor([0, 1, 1, 0, 1, 1])
    bm = from_tensors(train=[(x, y, t)], test=[(x, y, t)])
    model = TaskRecorder()
    strategy = agem.Naive(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=4,
        eval_mb_size=4,
        evaluator=False,  # only the forward passes of train() and eval() are recorded
    )
    strategy.train(bm.train_stream[0])
    assert sorted(torch.cat(model.seen).tolist()) == sorted(t.tolist())
    model.seen.clear()
    strategy.eval(bm.test_stream)
    assert torch.equal(torch.cat(model.seen), t)  # eval keeps the order

    # a non-tensor dataset yielding (x, y): every sample gets the experience's task label
    model.seen.clear()
    exp = Experience(PlainDataset(x, y), 0, task_label=2, classes_in_this_experience=(0, 1))
    strategy.train(exp)
    assert torch.equal(torch.cat(model.seen), torch.full((6,), 2))


def test_plain_models_get_no_task_labels() -> None:
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 1, 0])
    bm = from_tensors(train=[(x, y, 3)], test=[(x, y, 3)])
    model = nn.Sequential(nn.Linear(3, 2))  # forward(x) only: a second argument would fail
    strategy = agem.Naive(model, torch.optim.SGD(model.parameters(), lr=0.1), train_mb_size=4)
    strategy.train(bm.train_stream[0])
    assert strategy.eval(bm.test_stream)["accuracy/exp0"] >= 0.0


# ---- bad input ----------------------------------------------------------------


def _naive(num_classes: int = 3) -> agem.Naive:
    model = nn.Linear(3, num_classes)
    return agem.Naive(model, torch.optim.SGD(model.parameters(), lr=0.1), train_mb_size=2)


def test_experience_with_zero_samples() -> None:
    empty = Experience(TensorDataset(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)), 4)
    strategy = _naive()
    with pytest.raises(ValueError, match="experience 4 has no samples"):
        strategy.train(empty)
    with pytest.raises(ValueError, match="experience 4 has no samples"):
        strategy.eval([empty])
    assert strategy.is_training is False


def test_label_out_of_range_for_the_model() -> None:
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 5, 1, 0])
    bm = from_tensors(train=[(x, y)], test=[(x, y)])
    strategy = _naive(num_classes=3)
    before = [p.detach().clone() for p in strategy.model.parameters()]
    with pytest.raises(ValueError, match=r"experience 0 has label 5.*only 3 classes"):
        strategy.train(bm.train_stream[0])
    assert all(torch.equal(a, b) for a, b in zip(before, strategy.model.parameters(), strict=True))
    assert strategy.is_training is False
    with pytest.raises(ValueError, match=r"label 5.*only 3 classes"):
        strategy.eval(bm.test_stream)

    # the DataLoader path checks against the experience's classes
    ds = from_datasets(train=[PlainDataset(x, y)], test=[PlainDataset(x, y)])
    with pytest.raises(ValueError, match=r"label 5.*only 3 classes"):
        _naive(num_classes=3).train(ds.train_stream[0])


def test_negative_labels() -> None:
    x, y = torch.randn(4, 3), torch.tensor([0, -1, 1, 0])
    exp = Experience(TensorDataset(x, y), 0)
    with pytest.raises(ValueError, match="negative labels"):
        _naive().train(exp)


def test_non_dataset_in_an_experience() -> None:
    exp = Experience([(torch.zeros(3), 0)], 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="experience 1: dataset is a list, not a torch Dataset"):
        _naive().train(exp)
    with pytest.raises(TypeError, match="not a torch Dataset"):
        _naive().eval(exp)


def test_non_experience_passed_to_train_or_eval() -> None:
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    strategy = _naive()
    with pytest.raises(TypeError, match=r"train\(\) takes an Experience .* got TensorDataset"):
        strategy.train(TensorDataset(x, y))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"train\(\) takes an Experience .* got int"):
        strategy.train(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"eval\(\) got a Tensor where an Experience belongs"):
        strategy.eval([x])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"eval\(\) takes an Experience .* got Tensor"):
        strategy.eval(x)  # type: ignore[arg-type]
    assert strategy.clock.train_iterations == 0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"train_mb_size": 0}, "train_mb_size"),
        ({"train_mb_size": -2}, "train_mb_size"),
        ({"train_mb_size": 1.5}, "train_mb_size"),
        ({"train_mb_size": True}, "train_mb_size"),
        ({"train_epochs": 0}, "train_epochs"),
        ({"eval_mb_size": 0}, "eval_mb_size"),
        ({"seed": "zero"}, "seed"),
        ({"device": "not-a-device"}, "device"),
    ],
)
def test_invalid_constructor_values(kwargs: dict[str, Any], name: str) -> None:
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match=name):
        agem.Naive(model, torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)


def test_invalid_constructor_types() -> None:
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        agem.Naive(lambda x: x, opt)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="optimizer must be a torch Optimizer"):
        agem.Naive(model, "sgd")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="plugins must be a list"):
        agem.Naive(model, opt, plugins=Plugin())  # type: ignore[arg-type]


STRATEGIES: list[tuple[type, dict[str, Any]]] = [
    (agem.BaseTemplate, {}),
    (agem.Naive, {}),
    (agem.Cumulative, {}),
    (agem.AGEM, {"patterns_per_experience": 5}),
    (agem.GEM, {"patterns_per_experience": 5}),
    (agem.Replay, {"mem_size": 5}),
    (agem.EWC, {"ewc_lambda": 1.0}),
]


@pytest.mark.parametrize(("cls", "options"), STRATEGIES)
def test_options_after_model_and_optimizer_are_keyword_only(
    cls: type, options: dict[str, Any]
) -> None:
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="positional"):
        cls(model, opt, nn.CrossEntropyLoss(), **options)
    criterion = nn.CrossEntropyLoss()
    assert cls(model, opt, criterion=criterion, **options).criterion is criterion


@pytest.mark.parametrize(("cls", "options"), STRATEGIES)
def test_seed_none_leaves_the_global_rng_alone(cls: type, options: dict[str, Any]) -> None:
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    strategies = [cls(model, opt, seed=None, **options) for _ in range(2)]
    assert torch.equal(torch.rand(4), expected)
    assert strategies[0].seed != strategies[1].seed  # still a fresh seed per strategy


class HookLog(Plugin):
    """Records every training hook with the clock's iteration counter."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []


def _recorder(hook: str) -> Any:
    def record(self: HookLog, strategy: Any, **kwargs: Any) -> None:
        self.calls.append((hook, strategy.clock.train_iterations))

    return record


for _hook in agem.core.hooks.TRAIN_HOOKS:
    setattr(HookLog, _hook, _recorder(_hook))


def test_driving_the_public_phases_is_train() -> None:
    """The loop phases, called by hand in train()'s order, give train()'s hooks and weights."""
    bm = _bm(n=5)
    logs = HookLog(), HookLog()
    torch.manual_seed(0)
    by_train = _mlp_strategy([logs[0]])
    torch.manual_seed(0)
    by_phases = _mlp_strategy([logs[1]])
    torch.manual_seed(1)  # dropout
    by_train.train(list(bm.train_stream), num_workers=0)
    torch.manual_seed(1)
    s = by_phases
    s.start_training(num_workers=0)
    for exp in bm.train_stream:
        s.start_experience(exp, num_workers=0)
        for _ in range(s.train_epochs):
            for mbatch in s.start_epoch(num_workers=0):
                s.training_iteration(mbatch, num_workers=0)
            s.end_epoch(num_workers=0)
        s.end_experience(num_workers=0)
    s.end_training(num_workers=0)
    assert not s.is_training
    assert logs[1].calls == logs[0].calls
    assert len(logs[0].calls) > 20
    for a, b in zip(by_train.model.parameters(), by_phases.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert by_phases.clock.train_exp_counter == 2 and by_phases.clock.train_iterations == 6


def test_start_epoch_before_start_experience_is_an_error() -> None:
    s = _mlp_strategy()
    s.start_training()
    with pytest.raises(RuntimeError, match="start_experience comes before start_epoch"):
        s.start_epoch()
