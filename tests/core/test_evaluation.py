"""EvaluationPlugin: the accuracy matrix, b_j, LCA curves, training statistics, no side effects."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

import agem
from agem.benchmarks import from_tensors
from agem.plugins import EvaluationPlugin, Plugin


def _bm(n_exp: int = 3, n_train: int = 60, n_test: int = 50, tasks: bool = False) -> Any:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(n_exp, 8, 3, generator=g)

    def part(k: int, n: int) -> tuple[torch.Tensor, ...]:
        x = torch.randn(n, 8, generator=g)
        y = (x @ w[k]).argmax(dim=1)
        return (x, y, k) if tasks else (x, y)

    train = [part(k, n_train) for k in range(n_exp)]
    test = [part(k, n_test) for k in range(n_exp)]
    return from_tensors(train=train, test=test)


def _strategy(evaluator: Any, *, multihead: bool = False, plugins: Any = None, mb: int = 10):
    torch.manual_seed(0)
    if multihead:
        model: torch.nn.Module = agem.models.MultiHeadMLP(8, (16,), 3)
    else:
        model = agem.models.MLP(input_size=8, hidden_sizes=(16,), num_classes=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    return agem.Naive(
        model,
        opt,
        train_mb_size=mb,
        eval_mb_size=32,
        seed=0,
        evaluator=evaluator,
        plugins=plugins,
    )


def test_user_evals_fill_the_matrix_and_initial_accuracies() -> None:
    bm = _bm()
    s = _strategy(None)
    s.eval(bm.test_stream)  # untrained: b_j
    for exp in bm.train_stream:
        s.train(exp)
        s.eval(bm.test_stream)
    ev = s.evaluator
    R = ev.accuracy_matrix()
    assert len(R) == 3 and all(len(r) == 3 for r in R)
    summary = ev.summary()
    for key in ("A_T", "F_T", "BWT", "FWT"):
        assert isinstance(summary[key], float)
    assert summary["A_T"] == pytest.approx(sum(R[-1]) / 3)
    assert summary["initial_accuracies"] == [ev.initial_accuracies[j] for j in range(3)]
    assert isinstance(summary["LCA_10"], float)  # the test stream is learned from eval()
    assert [e["after_experience"] for e in ev.evaluations] == [-1, 0, 1, 2]
    assert len(ev.training) == 3 and all(0 <= r["accuracy"] <= 1 for r in ev.training)


def test_eval_stream_every_experience_and_lca() -> None:
    bm = _bm()
    ev = EvaluationPlugin(eval_stream=bm.test_stream, eval_every="experience", lca_test_size=20)
    s = _strategy(ev)
    s.train(bm.train_stream)
    summary = ev.summary()
    assert summary["T"] == 3
    assert all(v is not None for row in summary["accuracy_matrix"] for v in row)
    assert all(v is not None for v in summary["initial_accuracies"])
    assert len(summary["lca_curves"]) == 3
    assert all(len(c) == 11 for c in summary["lca_curves"])
    assert summary["lca_test_sizes"] == [20, 20, 20]
    assert summary["lca_test_size"] == 20
    assert summary["LCA_10"] == pytest.approx(
        agem.metrics.learning_curve_area(summary["lca_curves"], 10)
    )
    assert summary["train_seconds"] > 0 and summary["peak_rss_bytes"] > 0
    assert len(summary["experience_seconds"]) == 3
    # plain data: strict JSON round trip
    results = ev.results
    assert json.loads(json.dumps(results, allow_nan=False)) == results
    assert {"training", "experiences", "evaluations"} <= set(results)


def test_lca_curve_ends_at_the_diagonal_when_the_experience_is_short() -> None:
    """3 minibatches, beta 5, whole test set: the curve after the last minibatch equals
    R[k][k] and is held for the missing points."""
    bm = _bm(n_exp=2, n_train=30)
    ev = EvaluationPlugin(
        eval_stream=bm.test_stream, eval_every="experience", lca_beta=5, lca_test_size=None
    )
    s = _strategy(ev)
    s.train(bm.train_stream)
    R = ev.accuracy_matrix()
    for k in range(2):
        curve = ev.lca_curves[k]
        assert len(curve) == 6
        assert curve[3] == curve[4] == curve[5] == pytest.approx(R[k][k])
    # b = 0 on experience 0 is the untrained model on the same test set
    assert ev.lca_curves[0][0] == pytest.approx(ev.initial_accuracies[0])
    assert ev.lca_test_sizes == {0: 50, 1: 50}


def test_lca_off() -> None:
    bm = _bm(n_exp=2)
    ev = EvaluationPlugin(eval_stream=bm.test_stream, eval_every="experience", lca_beta=None)
    s = _strategy(ev)
    s.train(bm.train_stream)
    assert ev.lca_curves == {}
    assert ev.summary()["LCA"] is None and "LCA_10" not in ev.summary()


def _agem_with_dropout(evaluator: Any) -> Any:
    torch.manual_seed(0)
    model = agem.models.MLP(8, (16,), 3, dropout=0.3)  # dropout draws from the global RNG
    return agem.AGEM(
        model,
        torch.optim.SGD(model.parameters(), lr=0.2),
        patterns_per_experience=20,
        sample_size=8,
        train_mb_size=10,
        eval_mb_size=32,
        seed=0,
        evaluator=evaluator,
    )


@pytest.mark.parametrize("make", [_strategy, _agem_with_dropout], ids=["naive", "agem-dropout"])
def test_evaluation_does_not_change_training(make: Any) -> None:
    """Same weights, shuffling-generator and global RNG state with or without the
    evaluator (b_j measurement, LCA evaluations, evaluation after each experience)."""
    bm = _bm()
    ev = EvaluationPlugin(eval_stream=bm.test_stream, eval_every="experience", lca_test_size=25)
    a = make(ev)
    a.train(bm.train_stream)
    rng_a = torch.get_rng_state()
    b = make(False)
    b.train(bm.train_stream)
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)
    assert torch.equal(a.generator.get_state(), b.generator.get_state())
    assert torch.equal(rng_a, torch.get_rng_state())
    assert len(ev.lca_curves) == 3


def test_multihead_untrained_measurement_leaves_the_model_and_rng_alone() -> None:
    bm = _bm(tasks=True)
    ev = EvaluationPlugin(eval_stream=bm.test_stream, lca_test_size=20)
    s = _strategy(ev, multihead=True)
    groups = len(s.optimizer.param_groups)
    s.train(bm.train_stream[0])
    assert sorted(ev.initial_accuracies) == [0, 1, 2]
    assert s.model.classifier.task_labels == [0]  # heads for tasks 1, 2 were not added
    assert len(s.optimizer.param_groups) == groups
    own = {id(p) for p in s.model.parameters()}
    assert all(id(p) in own for g in s.optimizer.param_groups for p in g["params"])
    ref = _strategy(False, multihead=True)
    ref.train(bm.train_stream[0])
    for p, q in zip(s.model.parameters(), ref.model.parameters(), strict=True):
        assert torch.equal(p, q)
    assert len(ev.lca_curves[0]) == 11


def test_strategy_eval_is_called_only_for_the_first_beta_iterations() -> None:
    bm = _bm(n_exp=2, n_train=200)  # 20 minibatches per experience
    ev = EvaluationPlugin(eval_stream=bm.test_stream, eval_every="experience", lca_beta=3)
    s = _strategy(ev)
    calls: list[int] = []
    original = s.eval

    def counting_eval(*args: Any, **kwargs: Any) -> Any:
        calls.append(s.clock.train_exp_iterations)
        return original(*args, **kwargs)

    s.eval = counting_eval  # type: ignore[method-assign]
    s.train(bm.train_stream)
    # per experience: b = 0..3 (4 probes) and the evaluation after it; once before all.
    # The clock counts a minibatch after its hooks, so b = 1..3 see 0, 1, 2.
    assert len(calls) == 1 + 2 * (4 + 1)
    assert calls == [0] + [0, 0, 1, 2, 20] * 2


def _count_host_reads(monkeypatch: pytest.MonkeyPatch, n_train: int) -> int:
    bm = _bm(n_exp=1, n_train=n_train)
    ev = EvaluationPlugin(eval_stream=bm.test_stream, eval_every="experience", lca_beta=2)
    from agem.plugins import CSVLogger

    plugins = [CSVLogger("/dev/null", every=1, flush_every=10_000)]
    s = _strategy(ev, plugins=plugins)
    reads = {"n": 0}
    for name in ("item", "tolist", "__float__", "__int__"):
        real = getattr(torch.Tensor, name)

        def wrapper(self: torch.Tensor, *a: Any, _real: Any = real, **k: Any) -> Any:
            reads["n"] += 1
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    s.train(bm.train_stream)
    monkeypatch.undo()
    return reads["n"]


def test_no_host_read_per_training_iteration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a tensor back (item, tolist, float, int) costs the same for 10 and 40
    minibatches: nothing is read per iteration beyond the LCA's first beta."""
    assert _count_host_reads(monkeypatch, 100) == _count_host_reads(monkeypatch, 400)


class _EvalInHook(Plugin):
    """Evaluates the test stream from after_training_exp (before the evaluator runs)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        strategy.eval(self.stream)


def test_eval_from_a_training_hook_fills_the_current_row() -> None:
    bm = _bm(n_exp=2)
    s = _strategy(None, plugins=[_EvalInHook(bm.test_stream)])
    s.train(bm.train_stream)
    R = s.evaluator.accuracy_matrix()
    assert len(R) == 2 and all(v == v for row in R for v in row)


def test_only_the_last_row_gives_a_t_only() -> None:
    bm = _bm()
    s = _strategy(None)
    s.train(bm.train_stream)
    s.eval(bm.test_stream)
    summary = s.evaluator.summary()
    assert summary["A_T"] == pytest.approx(sum(summary["accuracy_matrix"][-1]) / 3)
    assert summary["F_T"] is None and summary["BWT"] is None and summary["FWT"] is None
    assert summary["accuracy_matrix"][0] == [None, None, None]


def test_state_dict_round_trip() -> None:
    bm = _bm(n_exp=2)
    ev = EvaluationPlugin(eval_stream=bm.test_stream, eval_every="experience")
    _strategy(ev).train(bm.train_stream)
    other = EvaluationPlugin()
    other.load_state_dict(ev.state_dict())
    assert other.accuracy_matrix() == ev.accuracy_matrix()
    assert other.lca_curves == ev.lca_curves
    assert other.training == ev.training
    assert other.summary()["A_T"] == ev.summary()["A_T"]


def test_last_metrics_are_not_overwritten_by_lca_evaluations() -> None:
    bm = _bm(n_exp=2)
    ev = EvaluationPlugin(eval_stream=bm.test_stream)
    s = _strategy(ev)
    s.train(bm.train_stream[0])
    metrics = s.eval(bm.test_stream)
    s.train(bm.train_stream[1])  # LCA evaluations of experience 1 happen here
    assert ev.last_metrics() == metrics
    assert set(metrics) >= {"accuracy/exp0", "accuracy/exp1", "accuracy/stream"}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"eval_every": "epoch"}, ValueError, "eval_every"),
        ({"eval_every": "experience"}, ValueError, "needs eval_stream"),
        ({"lca_beta": -1}, ValueError, "lca_beta"),
        ({"lca_beta": 2.5}, ValueError, "lca_beta"),
        ({"lca_test_size": 0}, ValueError, "lca_test_size"),
        ({"eval_stream": 3}, TypeError, "eval_stream"),
        ({"eval_stream": [1, 2]}, TypeError, "Experience"),
        ({"measure_initial": "yes"}, TypeError, "measure_initial"),
    ],
)
def test_bad_options(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        EvaluationPlugin(**kwargs)


class _Items(torch.utils.data.Dataset[tuple[torch.Tensor, int, int]]):
    """A plain map-style dataset (trained through a DataLoader, not tensor slicing)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, t: int) -> None:
        self.x, self.y, self.t = x, y, t

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        return self.x[i], int(self.y[i]), self.t


def _dropout_multihead(evaluator: Any) -> agem.BaseTemplate:
    torch.manual_seed(0)
    model = agem.models.MultiHeadMLP(8, (16,), 3, dropout=0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    return agem.Naive(model, opt, train_mb_size=8, eval_mb_size=16, seed=0, evaluator=evaluator)


def test_eval_calls_leave_training_bit_identical() -> None:
    """Evaluations that create heads for unseen tasks and iterate a DataLoader, with
    dropout in the model: the trained weights and the global RNG are unchanged."""
    bm = _bm(tasks=True)
    train = [_Items(e.dataset.x, e.dataset.y, e.task_label) for e in bm.train_stream]
    test = [_Items(e.dataset.x, e.dataset.y, e.task_label) for e in bm.test_stream]
    data = agem.benchmarks.from_datasets(train=train, test=test)
    runs = []
    for with_eval in (False, True):
        ev = EvaluationPlugin(eval_stream=data.test_stream, eval_every="experience")
        s = _dropout_multihead(ev if with_eval else False)
        for exp in data.train_stream:
            if with_eval:
                s.eval(data.test_stream)  # creates the heads of tasks not trained yet
            s.train(exp)
        runs.append((s, torch.rand(3)))
    (a, rand_a), (b, rand_b) = runs
    assert torch.equal(rand_a, rand_b)
    pa, pb = dict(a.model.named_parameters()), dict(b.model.named_parameters())
    assert pa.keys() == pb.keys()
    for name, p in pa.items():
        assert torch.equal(p, pb[name]), name


def test_matrix_follows_the_experiences_trained_from_any_start() -> None:
    bm = _bm(n_exp=3)
    s = _strategy(None)
    for exp in bm.train_stream[1:]:
        s.train(exp)
        s.eval(bm.test_stream[1:])
    summary = s.evaluator.summary()
    R = summary["accuracy_matrix"]
    assert all(v is not None for row in R for v in row)
    last = s.evaluator.evaluations[-1]["accuracy"]
    assert R[1] == [last["1"], last["2"]]
    assert summary["A_T"] == pytest.approx((last["1"] + last["2"]) / 2)
    assert summary["F_T"] is not None and summary["BWT"] is not None
    assert summary["experience_ids"] == [1, 2]


def test_matrix_follows_the_training_order() -> None:
    bm = _bm(n_exp=3)
    s = _strategy(None)
    s.eval(bm.test_stream)
    for k in (2, 0):
        s.train(bm.train_stream[k])
        s.eval(bm.test_stream)
    summary = s.evaluator.summary()
    assert summary["experience_ids"] == [2, 0]
    first = s.evaluator.evaluations[1]["accuracy"]  # after training experience 2
    assert summary["accuracy_matrix"][0] == [first["2"], first["0"]]
    b = s.evaluator.evaluations[0]["accuracy"]
    assert summary["initial_accuracies"] == [b["2"], b["0"]]
    assert summary["FWT"] == pytest.approx(first["0"] - b["0"])


class _EvalKwargs(Plugin):
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def before_eval(self, strategy: Any, **kwargs: Any) -> None:
        self.seen.append(kwargs)


@pytest.mark.parametrize("multihead", [False, True])
def test_train_kwargs_reach_the_evaluators_evaluations(multihead: bool) -> None:
    bm = _bm(n_exp=2, tasks=multihead)
    ev = EvaluationPlugin(eval_stream=bm.test_stream, eval_every="experience", lca_beta=2)
    rec = _EvalKwargs()
    s = _strategy(ev, multihead=multihead, plugins=[rec])
    s.train(bm.train_stream, num_workers=0, marker="x")
    # b_j (1), LCA points (3 per experience) and the stream after each experience (1 each)
    assert len(rec.seen) == 1 + 2 * 3 + 2
    assert all(kw == {"num_workers": 0, "marker": "x"} for kw in rec.seen)


def _split_bm(n_exp: int = 3, n: int = 40) -> Any:
    """Experience k holds classes 2k and 2k+1 of a 2 * n_exp class problem."""
    g = torch.Generator().manual_seed(1)
    w = torch.randn(n_exp, 8, 2, generator=g)

    def part(k: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, 8, generator=g)
        return x, 2 * k + (x @ w[k]).argmax(dim=1)

    return from_tensors(train=[part(k) for k in range(n_exp)], test=[part(k) for k in range(n_exp)])


def test_split_runs_report_task_incremental_accuracy_beside_class_incremental() -> None:
    """One evaluation, two accuracies: argmax over every class (the headline R, A_T) and
    argmax over the evaluated experience's own classes (R and A_T `_task_il`)."""
    bm = _split_bm()
    ev = EvaluationPlugin(eval_stream=bm.test_stream, eval_every="experience", lca_beta=None)
    torch.manual_seed(0)
    model = agem.models.MLP(input_size=8, hidden_sizes=(16,), num_classes=6)
    s = agem.Naive(
        model, torch.optim.SGD(model.parameters(), lr=0.2), train_mb_size=10, evaluator=ev
    )
    s.train(bm.train_stream)
    summary = ev.summary()
    model.eval()
    expected_class, expected_task = [], []
    with torch.no_grad():
        for exp in bm.test_stream:
            x, y = exp.dataset.x, exp.dataset.y
            out = model(x)
            expected_class.append((out.argmax(1) == y).float().mean().item())
            mask = torch.full((6,), float("-inf"))
            mask[list(exp.classes_in_this_experience)] = 0
            expected_task.append(((out + mask).argmax(1) == y).float().mean().item())
    assert summary["accuracy_matrix"][-1] == pytest.approx(expected_class)
    assert summary["accuracy_matrix_task_il"][-1] == pytest.approx(expected_task)
    assert summary["A_T_task_il"] == pytest.approx(sum(expected_task) / 3)
    assert summary["A_T_task_il"] > summary["A_T"]  # naive forgets across tasks, not within
    state = ev.state_dict()
    fresh = EvaluationPlugin(eval_stream=bm.test_stream, eval_every="experience", lca_beta=None)
    fresh.load_state_dict(json.loads(json.dumps(state)))
    assert fresh.summary()["accuracy_matrix_task_il"] == summary["accuracy_matrix_task_il"]


def test_no_task_incremental_accuracy_where_every_experience_has_every_class() -> None:
    bm = _bm()
    ev = EvaluationPlugin(eval_stream=bm.test_stream, eval_every="experience", lca_beta=None)
    _strategy(ev).train(bm.train_stream)
    assert "A_T_task_il" not in ev.summary() and "accuracy_matrix_task_il" not in ev.summary()
