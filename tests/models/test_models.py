"""MLP, MultiHeadMLP and MultiHeadClassifier: shapes, head growth, routing, optimizer sync."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import agem
from agem.benchmarks import from_tensors
from agem.models import MLP, MultiHeadClassifier, MultiHeadMLP, MultiTaskModule


def test_mlp_shapes_and_validation() -> None:
    model = MLP(input_size=12, hidden_sizes=(8, 5), num_classes=3)
    assert model(torch.randn(4, 3, 4)).shape == (4, 3)  # inputs are flattened
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(12, 8), (8, 5), (5, 3)]
    assert MLP(6, (), 2)(torch.randn(1, 6)).shape == (1, 2)
    assert any(isinstance(m, nn.Dropout) for m in MLP(6, (4,), 2, dropout=0.5).modules())
    with pytest.raises(ValueError, match="num_classes"):
        MLP(6, (4,), 0)
    with pytest.raises(ValueError, match="dropout"):
        MLP(6, (4,), 2, dropout=1.0)


def test_multihead_mlp_is_a_multitask_module() -> None:
    model = MultiHeadMLP(6, (4,), 3)
    assert isinstance(model, MultiTaskModule) and not isinstance(MLP(6, (4,), 3), MultiTaskModule)
    assert model(torch.randn(5, 6), torch.zeros(5, dtype=torch.long)).shape == (5, 3)


def test_heads_are_created_for_new_task_labels_only() -> None:
    head = MultiHeadClassifier(4, 3)
    assert head.task_labels == [0]
    new = head.adaptation([2, 0, 2])
    assert head.task_labels == [0, 2] and len(new) == 2  # weight and bias of head 2
    assert head.adaptation([0, 2]) == []
    with pytest.raises(ValueError, match="task labels must be >= 0"):
        head.adaptation([-1])


def test_per_sample_routing_equals_per_head_computation() -> None:
    torch.manual_seed(0)
    head = MultiHeadClassifier(4, 3, initial_task_labels=(0, 1, 3))
    head.adaptation([2])  # created later, so insertion order differs from label order
    x = torch.randn(8, 4)
    t = torch.tensor([3, 0, 2, 1, 1, 3, 0, 2])
    out = head(x, t)
    expected = torch.stack([head.heads[str(int(ti))](xi) for xi, ti in zip(x, t, strict=True)])
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(head(x, 2), head.heads["2"](x))
    out.sum().backward()  # gradients reach exactly the heads that were used
    assert all(head.heads[k].weight.grad is not None for k in "0123")
    head.zero_grad(set_to_none=True)
    head(x[:2], t[:2]).sum().backward()
    grads = {k: head.heads[k].weight.grad for k in "0123"}
    assert grads["3"] is not None and grads["0"] is not None
    assert grads["3"].abs().sum() > 0 and grads["0"].abs().sum() > 0
    assert grads["1"] is None and grads["2"] is None  # unused heads: no gradient at all


def _task_bm() -> agem.benchmarks.Benchmark:
    g = torch.Generator().manual_seed(0)

    def exp(t: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g), t

    return from_tensors(train=[exp(0), exp(1), exp(2)], test=[exp(0), exp(1), exp(2)])


def _params(head: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in head.parameters()]


def test_template_grows_heads_and_keeps_the_optimizer_in_sync() -> None:
    torch.manual_seed(0)
    model = MultiHeadMLP(6, (5,), 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    strategy = agem.Naive(model, opt, train_mb_size=4, seed=0)
    bm = _task_bm()
    strategy.train(bm.train_stream[0])
    assert model.classifier.task_labels == [0]
    strategy.train(bm.train_stream[1])
    assert model.classifier.task_labels == [0, 1]
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert {id(p) for p in model.parameters()} == in_opt
    # the new head trains: training task 1 again changes head 1 and leaves head 0 alone
    head0, head1 = _params(model.classifier.heads["0"]), _params(model.classifier.heads["1"])
    strategy.train(bm.train_stream[1])
    after0, after1 = _params(model.classifier.heads["0"]), _params(model.classifier.heads["1"])
    assert all(torch.equal(a, b) for a, b in zip(head0, after0, strict=True))
    assert all(not torch.equal(a, b) for a, b in zip(head1, after1, strict=True))


def test_eval_on_an_unseen_task_creates_an_untrained_head() -> None:
    """Evaluating every test experience after the first (the accuracy matrix, forward
    transfer) needs a head for tasks not trained yet."""
    torch.manual_seed(0)
    model = MultiHeadMLP(6, (5,), 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    strategy = agem.Naive(model, opt, train_mb_size=4, seed=0)
    bm = _task_bm()
    strategy.train(bm.train_stream[0])
    metrics = strategy.eval(bm.test_stream)
    assert {f"accuracy/exp{j}" for j in range(3)} <= set(metrics)
    assert model.classifier.task_labels == [0, 1, 2]
    assert all(m.training for m in model.modules())  # new heads follow the restored mode
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert {id(p) for p in model.parameters()} == in_opt
    head2 = _params(model.classifier.heads["2"])
    strategy.train(bm.train_stream[2])  # the head made at eval time is trained
    assert all(
        not torch.equal(a, b)
        for a, b in zip(head2, _params(model.classifier.heads["2"]), strict=True)
    )


def test_mixed_task_labels_in_a_non_tensor_dataset_get_their_heads() -> None:
    class Items(torch.utils.data.Dataset):
        def __init__(self) -> None:
            g = torch.Generator().manual_seed(0)
            self.x = torch.randn(6, 6, generator=g)

        def __len__(self) -> int:
            return 6

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
            return self.x[i], i % 3, [0, 2][i % 2]

    bm = agem.benchmarks.from_datasets(train=[Items()], test=[Items()])
    assert bm.train_stream[0].task_label == -1
    model = MultiHeadMLP(6, (5,), 3)
    strategy = agem.Naive(model, torch.optim.SGD(model.parameters(), lr=0.1), train_mb_size=4)
    strategy.train(bm.train_stream[0])
    assert model.classifier.task_labels == [0, 2]
    assert strategy.eval(bm.test_stream)["accuracy/exp0"] >= 0.0


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_heads_of_other_tasks_do_not_move(optimizer: str) -> None:
    """Training task 1 leaves head 0 exactly as it was, with weight decay or Adam."""
    bm = _task_bm()
    torch.manual_seed(0)
    model = agem.models.MultiHeadMLP(6, (8,), 3)
    params = model.parameters()
    opt = (
        torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.1)
        if optimizer == "sgd"
        else torch.optim.Adam(params, lr=0.01, weight_decay=0.1)
    )
    s = agem.Naive(model, opt, train_mb_size=5, seed=0, evaluator=False)
    s.train(bm.train_stream[0])
    head0 = [p.detach().clone() for p in model.classifier.heads["0"].parameters()]
    s.train(bm.train_stream[1])
    for before, p in zip(head0, model.classifier.heads["0"].parameters(), strict=True):
        assert p.grad is None
        assert torch.equal(p.detach(), before)


def test_unknown_task_label_raises() -> None:
    head = MultiHeadClassifier(4, 3, initial_task_labels=(0, 1))
    with pytest.raises(ValueError, match="no head for task label 5"):
        head(torch.randn(3, 4), torch.tensor([0, 5, 1]))
