"""GEM's per-step cost by number of past experiences, and its QP solvers against each other.

Step: the A-GEM paper's MNIST network (MLP 784-256-256-10), SGD lr 0.1, minibatch 10,
250 memory patterns per past experience (random 784-pixel inputs: a step's cost does not
depend on the pixels). For each number K of past experiences, the memories are filled
directly and one experience of `--patterns` patterns is trained; the process CPU time
per step is recorded for each variant ("GRADIENTS/SOLVER", e.g. loop/quadprog,
batched/device; "default" builds `agem.GEM` without options, so the script also runs
against older versions; "naive" is the plain step), the variants taking turns (the
order reversing each repeat). Medians over repeats; ratios are taken within a repeat.

Solver: for G [K, 269,322] (this network's parameter count) and a g that conflicts with
G's first row, the time of the whole projection (the test G g < 0, the Gram matrix, the
dual and G^T v + g) by quadprog (`agem.plugins.gem.project`) and by the device solver
(`agem.plugins.gem_qp.project_batched`), taking turns.

    python scripts/benchmark_gem.py                                   # K = 1, 5, 16
    python scripts/benchmark_gem.py --past 1 --patterns 100 --repeats 1   # smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

import agem
from agem.benchmarks import from_tensors

DIM, HIDDEN, CLASSES, MEMORY = 784, (256, 256), 10, 250


def step_time(variant: str, past: int, patterns: int) -> float:
    """CPU seconds per training step of `variant` with `past` past experiences' memories."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(patterns, DIM, generator=gen)
    y = torch.randint(0, CLASSES, (patterns,), generator=gen)
    stream = from_tensors(train=[(x, y)] * (past + 1), test=[(x, y)] * (past + 1))
    torch.manual_seed(0)
    model = agem.models.MLP(DIM, HIDDEN, CLASSES)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    common: dict[str, Any] = {"train_mb_size": 10, "evaluator": False, "seed": 0}
    if variant == "naive":
        strategy: agem.BaseTemplate = agem.Naive(model, opt, **common)
    else:
        options = {}
        if variant != "default":
            gradients, solver = variant.split("/")
            options = {"memory_gradients": gradients, "solver": solver}
        gem = agem.GEM(model, opt, patterns_per_experience=MEMORY, **options, **common)
        for k in range(past):
            gem.gem_plugin.memories[k] = (
                torch.rand(MEMORY, DIM, generator=gen),
                torch.randint(0, CLASSES, (MEMORY,), generator=gen),
                torch.zeros(MEMORY, dtype=torch.long),
            )
        strategy = gem
    start = time.process_time()
    strategy.train(stream.train_stream[past])
    return (time.process_time() - start) / strategy.clock.train_exp_iterations


def solver_time(solver: str, past: int, calls: int) -> float:
    """CPU seconds per projection of a conflicting g by `solver`."""
    gen = torch.Generator().manual_seed(past)
    params = sum(a * b + b for a, b in zip((DIM, *HIDDEN), (*HIDDEN, CLASSES), strict=True))
    G = torch.randn(past, params, generator=gen)
    g = -G[0] + 0.5 * torch.randn(params, generator=gen)
    if solver == "quadprog":
        from agem.plugins.gem import project as fn
    else:
        from agem.plugins.gem_qp import project_batched as fn
    fn(G, g, 0.5)
    start = time.process_time()
    for _ in range(calls):
        fn(G, g, 0.5)
    return (time.process_time() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--past", default="1,5,16", help="numbers of past experiences")
    parser.add_argument("--patterns", type=int, default=300, help="patterns trained per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--variants", default="naive,loop/quadprog,batched/quadprog,loop/device,batched/device"
    )
    parser.add_argument("--solvers", default="quadprog,device", help="empty: skip")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pasts = [int(k) for k in args.past.split(",")]
    variants = args.variants.split(",")
    solvers = [s for s in args.solvers.split(",") if s]
    steps: dict[str, list[float]] = {}
    solves: dict[str, list[float]] = {}
    for r in range(args.repeats):
        for k in pasts:
            for v in variants if r % 2 == 0 else variants[::-1]:
                ms = 1e3 * step_time(v, k, args.patterns)
                steps.setdefault(f"{v} K={k}", []).append(ms)
                print(f"repeat {r + 1} K={k} {v}: {ms:.2f} ms per step", flush=True)
            for s in solvers if r % 2 == 0 else solvers[::-1]:
                ms = 1e3 * solver_time(s, max(k, 1), 20)
                solves.setdefault(f"{s} K={k}", []).append(ms)
                print(f"repeat {r + 1} K={k} solver {s}: {ms:.3f} ms per projection", flush=True)
    print("\n| K | variant | CPU ms per step (median) | x first variant (median of ratios) |")
    print("|---:|---|---:|---:|")
    table: dict[str, Any] = {"steps": {}, "solvers": {}}
    for k in pasts:
        first = steps[f"{variants[0]} K={k}"]
        for v in variants:
            times = steps[f"{v} K={k}"]
            ratio = statistics.median(t / f for t, f in zip(times, first, strict=True))
            med = statistics.median(times)
            table["steps"][f"{v} K={k}"] = {"ms": med, "ratio": ratio, "all": times}
            print(f"| {k} | {v} | {med:.2f} | {ratio:.2f} |")
    if solvers:
        print("\n| K | solver | CPU ms per projection (median) |")
        print("|---:|---|---:|")
        for k in pasts:
            for s in solvers:
                med = statistics.median(solves[f"{s} K={k}"])
                table["solvers"][f"{s} K={k}"] = {"ms": med, "all": solves[f"{s} K={k}"]}
                print(f"| {k} | {s} | {med:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), **table}, f, indent=1)


if __name__ == "__main__":
    main()
