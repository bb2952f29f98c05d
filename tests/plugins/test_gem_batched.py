"""GEM's batched memory gradients equal the per-experience loop; the device solver trains
as quadprog does; the new options are validated and checkpoints carry over."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import agem
from agem.benchmarks import from_tensors, permuted_digits
from agem.plugins import GEMPlugin
from agem.plugins.gem import CPU_DEVICE_SOLVER_FROM
from agem.plugins.gem_grads import BatchedGradients, loop_gradients


def _strategy(model: nn.Module, **options: Any) -> agem.GEM:
    return agem.GEM(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        patterns_per_experience=options.pop("patterns", 20),
        train_mb_size=10,
        seed=0,
        evaluator=False,
        **options,
    )


def _memories(sizes: list[int], dim: int, task_labels: list[int] | None = None) -> list[Any]:
    gen = torch.Generator().manual_seed(0)
    return [
        (
            torch.randn(n, dim, generator=gen),
            torch.randint(0, 10, (n,), generator=gen),
            torch.full((n,), 0 if task_labels is None else task_labels[i], dtype=torch.long),
        )
        for i, n in enumerate(sizes)
    ]


def _both(strategy: agem.GEM, memories: list[Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
    params = [p for p in strategy.model.parameters() if p.requires_grad]
    total = sum(p.numel() for p in params)
    loop = torch.full((len(memories), total), float("nan"))
    loop_gradients(strategy, params, memories, loop)
    linears = BatchedGradients.applies(strategy.model, params)
    if not linears:
        return loop, None
    batched = torch.full_like(loop, float("nan"))
    if not BatchedGradients(memories)(strategy, linears, params, batched):
        return loop, None
    return loop, batched


@pytest.mark.parametrize("sizes", [[7], [20, 20, 20], [5, 20, 1, 13]])
def test_batched_equals_loop(sizes: list[int]) -> None:
    torch.manual_seed(0)
    s = _strategy(agem.models.MLP(12, (16, 8), 10))
    loop, batched = _both(s, _memories(sizes, 12))
    assert batched is not None
    torch.testing.assert_close(batched, loop, rtol=1e-5, atol=1e-6)


def test_batched_with_frozen_parameters() -> None:
    torch.manual_seed(0)
    model = agem.models.MLP(12, (16,), 10)
    first = next(m for m in model.modules() if isinstance(m, nn.Linear))
    first.bias.requires_grad_(False)
    s = _strategy(model)
    loop, batched = _both(s, _memories([9, 4], 12))
    assert batched is not None and loop.shape[1] == sum(
        p.numel() for p in model.parameters() if p.requires_grad
    )
    torch.testing.assert_close(batched, loop, rtol=1e-5, atol=1e-6)


def test_batchnorm_and_non_linear_parameters_use_the_loop() -> None:
    bn = nn.Sequential(nn.Linear(12, 16), nn.BatchNorm1d(16, affine=False), nn.Linear(16, 10))
    s = _strategy(bn)
    assert BatchedGradients.applies(bn, list(bn.parameters())) == {}
    conv = nn.Sequential(
        nn.Unflatten(1, (1, 12)), nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(20, 10)
    )
    assert BatchedGradients.applies(conv, list(conv.parameters())) == {}
    assert s.gem_plugin.memory_gradients == "auto"


def test_multihead_memories_fall_back_to_the_loop_with_their_labels() -> None:
    torch.manual_seed(0)
    model = agem.models.MultiHeadMLP(12, (16,), 10)
    model.classifier.adaptation([0, 1])
    s = _strategy(model)
    memories = _memories([6, 5], 12, task_labels=[0, 1])
    loop, batched = _both(s, memories)
    assert batched is None  # each head sees its task's patterns only
    head1 = [n for n, _ in model.named_parameters() if n.startswith("classifier.heads.1")]
    offset = 0
    for name, p in model.named_parameters():
        block = loop[0, offset : offset + p.numel()]
        if name in head1:
            assert torch.count_nonzero(block) == 0  # memory 0 uses head 0 only
        offset += p.numel()
    one_head = _memories([6, 5], 12, task_labels=[1, 1])
    loop, batched = _both(s, one_head)  # one head for every pattern: batched applies
    assert batched is not None
    torch.testing.assert_close(batched, loop, rtol=1e-5, atol=1e-6)


def _train(**options: Any) -> tuple[agem.GEM, list[torch.Tensor]]:
    torch.manual_seed(0)
    bm = permuted_digits(4, seed=0)
    model = agem.models.MLP(64, (32,), 10)
    s = _strategy(model, patterns=30, **options)
    s.train(bm.train_stream)
    return s, [p.detach().clone() for p in model.parameters()]


@pytest.mark.slow
def test_training_batched_and_device_solver_match_the_loop_and_quadprog() -> None:
    ref, ref_params = _train(memory_gradients="loop", solver="quadprog")
    for options in (
        {"memory_gradients": "batched", "solver": "quadprog"},
        {"memory_gradients": "loop", "solver": "device"},
        {"memory_gradients": "auto", "solver": "device"},
    ):
        s, params = _train(**options)
        assert s.gem_plugin.n_solves == ref.gem_plugin.n_solves > 0, options
        for a, b in zip(params, ref_params, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_device_solver_counts_solves_and_checkpoints_carry_over() -> None:
    s, _ = _train(solver="device")
    assert isinstance(s.gem_plugin._device_solves, torch.Tensor)
    state = s.gem_plugin.state_dict()
    assert state["n_solves"] == s.gem_plugin.n_solves > 0
    for solver in ("quadprog", "device"):
        fresh = GEMPlugin(30, solver=solver)
        fresh.load_state_dict(state)
        assert fresh.n_solves == state["n_solves"]
        assert all(
            torch.equal(fresh.memories[k][0], m[0]) for k, m in s.gem_plugin.memories.items()
        )


def test_auto_solver_is_quadprog_on_the_cpu_for_few_past_experiences() -> None:
    plugin = GEMPlugin(5)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert plugin.resolved_solver(cpu, CPU_DEVICE_SOLVER_FROM - 1) == "quadprog"
    assert plugin.resolved_solver(cpu, CPU_DEVICE_SOLVER_FROM) == "device"
    assert plugin.resolved_solver(cuda, 1) == "device"
    assert GEMPlugin(5, solver="device").resolved_solver(cpu, 1) == "device"
    assert GEMPlugin(5, solver="quadprog").resolved_solver(cuda, 19) == "quadprog"


def test_small_experience_memories_of_unequal_sizes_train() -> None:
    gen = torch.Generator().manual_seed(0)
    data = [
        (torch.randn(n, 6, generator=gen), torch.randint(0, 3, (n,), generator=gen))
        for n in (4, 30, 30)
    ]
    bm = from_tensors(train=data, test=data)
    results = []
    for method in ("loop", "batched"):
        torch.manual_seed(0)
        model = agem.models.MLP(6, (8,), 3)
        s = _strategy(model, patterns=10, memory_gradients=method)
        s.train(bm.train_stream)
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_new_options_are_validated() -> None:
    with pytest.raises(ValueError, match="solver must be one of auto, quadprog, device"):
        GEMPlugin(5, solver="cvxpy")
    with pytest.raises(ValueError, match="memory_gradients must be one of"):
        GEMPlugin(5, memory_gradients="vmap")
    model = agem.models.MLP(4, (4,), 2)
    s = agem.GEM(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        patterns_per_experience=5,
        solver="device",
        memory_gradients="loop",
    )
    assert (s.gem_plugin.solver, s.gem_plugin.memory_gradients) == ("device", "loop")


@pytest.mark.slow
def test_command_line_gem_solver(tmp_path: Path) -> None:
    from agem.cli.main import main
    from agem.plugins.gem import SOLVERS
    from agem.runs.config import GEM_SOLVERS, RunConfig
    from tests.helpers.runs import TINY, one_line_error, results
    from tests.helpers.runs import agem as agem_cli

    assert GEM_SOLVERS == SOLVERS
    out = tmp_path / "run"
    argv = ["run", *TINY, "--strategy", "gem", "--gem-solver", "device", "--out", str(out)]
    assert main(argv) == 0
    assert results(out)["status"] == "complete"
    assert RunConfig.from_file(out / "config.json").gem_solver == "device"
    line = one_line_error(agem_cli("run", "--strategy", "gem", "--gem-solver", "cvxpy"))
    assert "--gem-solver" in line and "cvxpy" in line
