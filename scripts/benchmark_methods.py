"""Per-step training cost of every method, as a ratio to A-GEM, on one stream.

The A-GEM paper's MNIST network (MLP 784-256-256-10), SGD, minibatch 10, one epoch, on a
synthetic permuted stream (random inputs: the cost of a step does not depend on what the
pixels show): `--experiences` experiences of `--patterns` patterns each. A-GEM and GEM
keep 250 patterns per experience, A-GEM's reference sample is 256; EWC's lambda is 10 at
lr 0.03, SI/MAS/RWalk use their defaults. Progressive networks get one task label per
experience (a column each); the other methods are single-head.

In one process, every method's strategy is built from the same initial weights and
they take turns experience by experience (the order reverses each time), so that all
see the same load at nearly the same moment. A timing plugin records the process CPU
time and the wall time of the training steps of each experience (from its first to its
last minibatch) apart from the work at its end (Fisher, importances, memory updates).
With one torch thread the CPU time is the least disturbed by other processes. Printed,
as medians over repeats: the mean CPU time per step over experiences 2..T, its ratio to
A-GEM's in the same repeat (also by wall time), the step time in the last experience
over that in the second (1.0: flat in the number of experiences), and the CPU time of
the work at each experience's end.

    python scripts/benchmark_methods.py                    # 10 x 1000, 3 repeats
    python scripts/benchmark_methods.py --experiences 4 --patterns 200 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import agem
from agem.benchmarks import from_tensors
from agem.benchmarks.streams import Benchmark
from agem.plugins import Plugin

METHODS = ("naive", "agem", "gem", "ewc", "ewc-running", "si", "mas", "rwalk", "pnn")


class StepTimer(Plugin):
    """CPU and wall time of each experience's training steps and of the work at its end."""

    order = 10_000  # after every other plugin's hooks

    def __init__(self) -> None:
        self.steps: list[float] = []  # CPU seconds per step, by experience
        self.wall: list[float] = []  # wall seconds per step, by experience
        self.ends: list[float] = []  # CPU seconds at each experience's end
        self._t = (0.0, 0.0)

    @staticmethod
    def _now() -> tuple[float, float]:
        return time.process_time(), time.perf_counter()

    def before_training_exp(self, strategy: agem.BaseTemplate, **kwargs: Any) -> None:
        self._t = self._now()

    def after_training_epoch(self, strategy: agem.BaseTemplate, **kwargs: Any) -> None:
        now = self._now()
        steps = max(strategy.clock.train_exp_iterations, 1)
        self.steps.append((now[0] - self._t[0]) / steps)
        self.wall.append((now[1] - self._t[1]) / steps)
        self._t = now

    def after_training(self, strategy: agem.BaseTemplate, **kwargs: Any) -> None:
        self.ends.append(self._now()[0] - self._t[0])


def stream(experiences: int, patterns: int, *, task_labels: bool) -> Benchmark:
    gen = torch.Generator().manual_seed(0)
    base = torch.rand(patterns, 784, generator=gen)
    y = torch.randint(0, 10, (patterns,), generator=gen)
    items = []
    for e in range(experiences):
        perm = torch.randperm(784, generator=gen)
        items.append((base[:, perm], y, e) if task_labels else (base[:, perm], y))
    return from_tensors(train=items, test=[items[0]] * experiences)


def build(method: str, model: nn.Module, timer: StepTimer) -> agem.BaseTemplate:
    lr = 0.03 if method.startswith("ewc") else 0.1
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    common: dict[str, Any] = {
        "train_mb_size": 10,
        "evaluator": False,
        "seed": 0,
        "plugins": [timer],
    }
    makers: dict[str, Callable[[], agem.BaseTemplate]] = {
        "naive": lambda: agem.Naive(model, opt, **common),
        "agem": lambda: agem.AGEM(
            model, opt, patterns_per_experience=250, sample_size=256, **common
        ),
        "gem": lambda: agem.GEM(model, opt, patterns_per_experience=250, **common),
        "ewc": lambda: agem.EWC(model, opt, ewc_lambda=10.0, **common),
        "ewc-running": lambda: agem.EWC(model, opt, ewc_lambda=10.0, mode="running", **common),
        "si": lambda: agem.SI(model, opt, **common),
        "mas": lambda: agem.MAS(model, opt, **common),
        "rwalk": lambda: agem.RWalk(model, opt, **common),
        "pnn": lambda: agem.PNN(model, opt, **common),
    }
    return makers[method]()


def run_all(methods: list[str], experiences: int, patterns: int) -> dict[str, StepTimer]:
    """Train every method on the stream, taking turns experience by experience."""
    streams = {
        labels: stream(experiences, patterns, task_labels=labels) for labels in (False, True)
    }
    strategies, timers = {}, {}
    for m in methods:
        torch.manual_seed(0)
        model: nn.Module = (
            agem.models.ProgressiveNet(784, (256, 256), 10)
            if m == "pnn"
            else agem.models.MLP(784, (256, 256), 10)
        )
        timers[m] = StepTimer()
        strategies[m] = build(m, model, timers[m])
    for e in range(experiences):
        for m in methods if e % 2 == 0 else methods[::-1]:
            strategies[m].train(streams[m == "pnn"].train_stream[e])
    return timers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiences", type=int, default=10)
    parser.add_argument("--patterns", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    per: dict[str, dict[str, list[float]]] = {m: {} for m in methods}
    for r in range(args.repeats):
        timers = run_all(methods if r % 2 == 0 else methods[::-1], args.experiences, args.patterns)
        ref = timers.get("agem")
        for m, timer in timers.items():
            step = statistics.mean(timer.steps[1:])
            print(f"repeat {r + 1} {m}: {1e3 * step:.3f} ms CPU per step")
            figures = per[m]
            figures.setdefault("step_ms", []).append(1e3 * step)
            if ref is not None:
                figures.setdefault("ratio", []).append(step / statistics.mean(ref.steps[1:]))
                wall = statistics.mean(timer.wall[1:]) / statistics.mean(ref.wall[1:])
                figures.setdefault("ratio_wall", []).append(wall)
            figures.setdefault("growth", []).append(timer.steps[-1] / timer.steps[1])
            figures.setdefault("end_ms", []).append(1e3 * statistics.mean(timer.ends))
    print()
    print(
        "| method | CPU per step (ms) | × A-GEM (CPU) | × A-GEM (wall) "
        "| last / second experience | end of experience (CPU ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    table = {}
    for m in methods:
        med = {k: statistics.median(v) for k, v in per[m].items()}
        table[m] = med
        ratio = f"{med['ratio']:.2f} | {med['ratio_wall']:.2f}" if "ratio" in med else "- | -"
        print(
            f"| {m} | {med['step_ms']:.2f} | {ratio} | {med['growth']:.2f} | {med['end_ms']:.0f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "medians": table, "all": per}, f, indent=1)


if __name__ == "__main__":
    main()
