"""EWC: the Fisher is the mean squared per-sample gradient, the penalty equals
lambda/2 sum F (theta - theta*)^2 and is added to the loss; separate and online modes."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn

import agem
from agem.benchmarks import from_tensors
from agem.plugins import EWCPlugin, Plugin
from agem.plugins.ewc import fisher_diagonal


def _bench(n_exp: int = 2, n: int = 12, features: int = 3, tasks: bool = False) -> Any:
    gen = torch.Generator().manual_seed(0)
    train = []
    for e in range(n_exp):
        x = torch.randn(n, features, generator=gen)
        y = torch.randint(0, 2, (n,), generator=gen)
        train.append((x, y, e) if tasks else (x, y))
    return from_tensors(train=train, test=train)


def _hand_fisher(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean over samples of the squared gradient of -log p(y|x), one sample at a time."""
    out = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(y.shape[0]):
        model.zero_grad()
        logp = torch.log_softmax(model(x[i : i + 1]), dim=1)[0, y[i]]
        (-logp).backward()
        for n, p in model.named_parameters():
            out[n] += p.grad**2
    return {n: v / y.shape[0] for n, v in out.items()}


def _strategy(model: nn.Module, **kw: Any) -> agem.EWC:
    return agem.EWC(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=4,
        seed=0,
        evaluator=False,
        **kw,
    )


def test_fisher_is_mean_squared_per_sample_gradient() -> None:
    torch.manual_seed(0)
    bm = _bench()
    model = nn.Linear(3, 2)
    s = _strategy(model, ewc_lambda=1.0)
    s.train(bm.train_stream[0])
    fisher, anchor = s.ewc_plugin.terms[0]
    data = bm.train_stream[0].dataset
    expected = _hand_fisher(model, data.x, data.y)
    for n in expected:
        torch.testing.assert_close(fisher[n], expected[n])
        torch.testing.assert_close(anchor[n], dict(model.named_parameters())[n].detach())


def test_penalty_equals_hand_computed_value_and_is_added_to_the_loss() -> None:
    torch.manual_seed(0)
    bm = _bench()
    model = nn.Linear(3, 2)
    lam = 3.5
    s = _strategy(model, ewc_lambda=lam)
    s.train(bm.train_stream[0])
    F = {n: f.clone() for n, f in s.ewc_plugin.terms[0][0].items()}
    star = {n: a.clone() for n, a in s.ewc_plugin.terms[0][1].items()}
    with torch.no_grad():
        model.weight.add_(torch.tensor([[0.1, -0.2, 0.3], [0.05, 0.0, -0.4]]))
        model.bias.add_(torch.tensor([0.2, -0.1]))
    w, b = model.weight.detach(), model.bias.detach()
    hand = 0.0
    for i in range(2):
        hand += F["bias"][i].item() * (b[i].item() - star["bias"][i].item()) ** 2
        for j in range(3):
            hand += F["weight"][i, j].item() * (w[i, j].item() - star["weight"][i, j].item()) ** 2
    hand *= lam / 2
    penalty = s.ewc_plugin.penalty(model)
    assert penalty is not None
    assert penalty.item() == pytest.approx(hand, rel=1e-6)
    assert hand > 0

    seen: list[tuple[float, float]] = []

    class Watch(Plugin):
        order = 1  # after EWC's before_backward

        def before_backward(self, strategy: Any, **kwargs: Any) -> None:
            plain = strategy.criterion(strategy.mb_output, strategy.mb_y)
            expected = plain + s.ewc_plugin.penalty(strategy.model)
            seen.append((strategy.loss.item(), expected.item()))

    s.plugins = sorted([*s.plugins, Watch()], key=lambda p: p.order)
    s.train(bm.train_stream[1])
    assert seen and all(a == pytest.approx(e, rel=1e-6) for a, e in seen)


def test_separate_mode_keeps_one_term_per_experience() -> None:
    torch.manual_seed(0)
    bm = _bench(3)
    model = nn.Linear(3, 2)
    s = _strategy(model, ewc_lambda=2.0)
    s.train(bm.train_stream)
    assert sorted(s.ewc_plugin.terms) == [0, 1, 2]
    params = dict(model.named_parameters())
    hand = sum(
        (f[n] * (params[n] - a[n]) ** 2).sum() for f, a in s.ewc_plugin.terms.values() for n in f
    )
    penalty = s.ewc_plugin.penalty(model)
    assert penalty is not None
    torch.testing.assert_close(penalty, hand * 1.0)  # lambda / 2 = 1
    ours = torch.autograd.grad(penalty, list(params.values()))
    theirs = torch.autograd.grad(hand, list(params.values()))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)


def test_online_mode_decays_a_single_fisher() -> None:
    torch.manual_seed(0)
    bm = _bench(2)
    model = nn.Linear(3, 2)
    s = _strategy(model, ewc_lambda=2.0, mode="online", decay_factor=0.25)
    s.train(bm.train_stream[0])
    f0 = {n: f.clone() for n, f in s.ewc_plugin.terms[-1][0].items()}
    s.train(bm.train_stream[1])
    assert list(s.ewc_plugin.terms) == [-1]
    fisher, anchor = s.ewc_plugin.terms[-1]
    data = bm.train_stream[1].dataset
    f1 = _hand_fisher(model, data.x, data.y)
    for n in f1:
        torch.testing.assert_close(fisher[n], 0.25 * f0[n] + f1[n])
        torch.testing.assert_close(anchor[n], dict(model.named_parameters())[n].detach())


def test_new_heads_are_not_penalised_and_heads_get_their_task() -> None:
    torch.manual_seed(0)
    bm = _bench(2, tasks=True)
    model = agem.models.MultiHeadMLP(3, (4,), 2)
    s = _strategy(model, ewc_lambda=1.0)
    s.train(bm.train_stream[0])
    fisher = s.ewc_plugin.terms[0][0]
    assert not any(n.startswith("classifier.heads.1") for n in fisher)
    assert fisher["classifier.heads.0.weight"].abs().sum() > 0
    s.train(bm.train_stream[1])
    assert s.ewc_plugin.terms[1][0]["classifier.heads.0.weight"].abs().sum() == 0
    assert s.ewc_plugin.terms[1][0]["classifier.heads.1.weight"].abs().sum() > 0


class _NoVmap(nn.Module):
    """A model with a non-Linear parameter whose forward calls .item(): vmap fails."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.scale = nn.Parameter(torch.tensor(1.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sign = 1.0 if x.abs().sum().item() >= 0 else -1.0
        return self.lin(x) * self.scale * sign


def test_loop_fallback_with_a_warning_matches_hand_fisher() -> None:
    torch.manual_seed(0)
    bm = _bench()
    model = _NoVmap()
    s = _strategy(model, ewc_lambda=1.0)
    data = bm.train_stream[0].dataset
    with pytest.warns(UserWarning, match="looping over samples"):
        fisher = fisher_diagonal(s, data)
    expected = _hand_fisher(model, data.x, data.y)
    for n in expected:
        torch.testing.assert_close(fisher[n], expected[n])


@pytest.mark.parametrize("multihead", [False, True])
def test_linear_shortcut_equals_per_sample_gradients(multihead: bool) -> None:
    torch.manual_seed(0)
    bm = _bench(2, n=37, features=5, tasks=multihead)
    model: nn.Module = (
        agem.models.MultiHeadMLP(5, (7, 6), 2) if multihead else agem.models.MLP(5, (7, 6), 2)
    )
    if multihead:
        model.classifier.adaptation([0, 1])
    s = _strategy(model, ewc_lambda=1.0)
    data = (
        from_tensors(
            train=[
                (
                    torch.cat([e.dataset.x for e in bm.train_stream]),
                    torch.cat([e.dataset.y for e in bm.train_stream]),
                    torch.cat([e.dataset.t for e in bm.train_stream]),
                )
            ],
            test=[(torch.zeros(1, 5), torch.zeros(1).long())],
        )
        .train_stream[0]
        .dataset
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = {m: fisher_diagonal(s, data, method=m) for m in ("linear", "vmap", "loop")}
    assert set(results["linear"]) == {n for n, _ in model.named_parameters()}
    for n, f in results["loop"].items():
        torch.testing.assert_close(results["linear"][n], f)
        torch.testing.assert_close(results["vmap"][n], f)
    assert fisher_diagonal(s, data)["features.1.weight"].equal(
        results["linear"]["features.1.weight"]
    )
    with pytest.raises(ValueError, match="linear"):
        fisher_diagonal(_strategy(_NoVmap(), ewc_lambda=1.0), data, method="linear")


def test_batchnorm_model_uses_vmap_and_keeps_train_mode() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(10, 3, 8, 8, generator=gen)
    y = torch.randint(0, 3, (10,), generator=gen)
    bm = from_tensors(train=[(x, y)], test=[(x, y)])
    model = agem.models.ReducedResNet18(3, nf=2)
    s = _strategy(model, ewc_lambda=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.train(bm.train_stream[0])
    assert model.training
    fisher = s.ewc_plugin.terms[0][0]
    assert all(torch.isfinite(f).all() for f in fisher.values())
    assert sum(f.sum() for f in fisher.values()) > 0


def test_options_are_validated_and_plugins_not_mutated() -> None:
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="ewc_lambda"):
        agem.EWC(model, opt, ewc_lambda=-1.0)
    with pytest.raises(ValueError, match="mode"):
        EWCPlugin(1.0, mode="both")
    with pytest.raises(ValueError, match="decay_factor"):
        EWCPlugin(1.0, mode="online")
    with pytest.raises(ValueError, match="decay_factor"):
        EWCPlugin(1.0, mode="online", decay_factor=1.5)
    with pytest.raises(ValueError, match="decay_factor"):
        EWCPlugin(1.0, mode="separate", decay_factor=0.5)
    mine: list[Any] = []
    s = agem.EWC(model, opt, ewc_lambda=1.0, plugins=mine)
    assert mine == [] and s.ewc_plugin in s.plugins


def test_state_dict_round_trip() -> None:
    torch.manual_seed(0)
    bm = _bench()
    model = nn.Linear(3, 2)
    s = _strategy(model, ewc_lambda=1.0)
    s.train(bm.train_stream[0])
    fresh = EWCPlugin(1.0)
    fresh.load_state_dict(s.ewc_plugin.state_dict())
    penalty_a, penalty_b = fresh.penalty(model), s.ewc_plugin.penalty(model)
    assert penalty_a is not None and penalty_b is not None
    with torch.no_grad():
        model.bias.add_(1.0)
    torch.testing.assert_close(fresh.penalty(model), s.ewc_plugin.penalty(model))
