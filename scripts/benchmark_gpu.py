"""Throughput of the captured step and the fleet: milliseconds per training step.

On a CUDA device, in one process, alternating (the order rotates each repeat), after an
untimed warm-up, each on Permuted Fashion-MNIST (synthetic stand-in when the files are
missing), MLP 784-256-256-10, SGD lr 0.1, minibatch 10, 1 epoch, A-GEM memory 250 per
experience, reference sample 256:

  hand_agem      a minimal hand-written A-GEM loop (scripts/benchmark_agem.py's)
  agem           agem.AGEM, eager
  agem_graph     agem.AGEM(cuda_graph=True)
  fleet8         agem.fleet.Fleet of 8 A-GEM seeds, eager
  fleet8_graph   the same fleet with cuda_graph=True
  naive          agem.Naive, eager
  naive_graph    agem.Naive(cuda_graph=True)

On a CPU (no CUDA graphs there) it runs a smaller setting and measures the fleet of K
A-GEM seeds against the same K seeds run one after another (`seqK`), and one run alone.

"ms/run-step" is training wall time (evaluation excluded, memory updates and captures
included) divided by minibatch steps and by runs; A_T is measured after training (for
fleets and sequences: the mean over the runs).

    python scripts/benchmark_gpu.py                     # CUDA if available, else CPU
    python scripts/benchmark_gpu.py --device cpu --repeats 3 --fleet 4

`--protocol` times the paper protocol's reported phase instead: every method of the
`agem-paper-pfmnist` preset, `--seeds` seeds (default 5), eager, captured, as a fleet and
as a captured fleet, in ms per run-step, with the wall time (scripts/protocol_timing.py):

    python scripts/benchmark_gpu.py --protocol --device cuda
    python scripts/benchmark_gpu.py --protocol --device cpu --hidden 32 --experiences 2 \
        --train-patterns 100 --repeats 1 --synthetic       # tiny: checks that it works
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_agem import average_accuracy, hand_agem, permuted_fashion, stream_tensors

GPU_VARIANTS = (
    "hand_agem",
    "agem",
    "agem_graph",
    "fleet",
    "fleet_graph",
    "naive",
    "naive_graph",
)
CPU_VARIANTS = ("agem", "fleet", "seq")


def _model(seed: int, device: torch.device) -> nn.Module:
    import agem

    torch.manual_seed(seed)  # as `agem run` does: the seed fixes the initial weights
    return agem.models.MLP(784, (256, 256), 10).to(device)


def _strategy(name: str, seed: int, cfg: argparse.Namespace, graph: bool) -> Any:
    import agem

    model = _model(seed, cfg.device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    common: dict[str, Any] = {
        "train_mb_size": cfg.batch_size, "device": cfg.device, "evaluator": False,
        "seed": seed, "cuda_graph": graph,
    }  # fmt: skip
    if name == "naive":
        return agem.Naive(model, opt, **common)
    return agem.AGEM(
        model, opt, patterns_per_experience=cfg.patterns_per_experience,
        sample_size=cfg.sample_size, **common,
    )  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_variant(
    name: str, seed: int, cfg: argparse.Namespace, bm: Any, data: list[tuple[Tensor, Tensor]]
) -> tuple[float, list[nn.Module], int]:
    """Train one variant; return (seconds, the trained models, runs)."""
    from agem.fleet import Fleet

    device: torch.device = cfg.device
    graph = name.endswith("_graph")
    base = name.removesuffix("_graph")
    _sync(device)
    if base == "hand_agem":
        model = _model(seed, device)
        start = time.perf_counter()
        hand_agem(model, data, cfg, seed)
        _sync(device)
        return time.perf_counter() - start, [model], 1
    if base in ("agem", "naive"):
        strategy = _strategy(base, seed, cfg, graph)
        start = time.perf_counter()
        for exp in bm.train_stream:
            strategy.train(exp)
        _sync(device)
        return time.perf_counter() - start, [strategy.model], 1
    k = cfg.fleet
    members = [_strategy("agem", seed + i, cfg, False) for i in range(k)]
    if base == "seq":
        start = time.perf_counter()
        for m in members:
            for exp in bm.train_stream:
                m.train(exp)
        _sync(device)
        return time.perf_counter() - start, [m.model for m in members], k
    fleet = Fleet(members, cuda_graph=graph)
    start = time.perf_counter()
    for exp in bm.train_stream:
        fleet.train([exp] * k)
    _sync(device)
    return time.perf_counter() - start, [m.model for m in members], k


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--experiences", type=int, default=None, help="default 5 (cuda), 3 (cpu)")
    p.add_argument("--train-patterns", type=int, default=None, help="default 5000 / 1000")
    p.add_argument("--fleet", type=int, default=None, help="fleet size (default 8 / 4)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--patterns-per-experience", type=int, default=250)
    p.add_argument("--sample-size", type=int, default=256)
    p.add_argument("--variants", default=None, help="comma-separated subset")
    p.add_argument("--synthetic", action="store_true", help="use the synthetic stand-in data")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--protocol", action="store_true", help="time every method of the paper")
    p.add_argument("--seeds", type=int, default=5, help="--protocol: seeds per method")
    p.add_argument("--methods", default="", help="--protocol: comma-separated subset")
    p.add_argument(
        "--hidden", type=int, nargs="+", default=[256, 256], help="--protocol: hidden sizes"
    )
    args = p.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    name = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.device = torch.device(name)
    if args.device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda asked for, but CUDA is not available here")
    gpu = args.device.type == "cuda"
    args.experiences = args.experiences or (5 if gpu else 3)
    args.train_patterns = args.train_patterns or (5000 if gpu else 1000)
    args.fleet = args.fleet or (8 if gpu else 4)
    allowed = GPU_VARIANTS if gpu else CPU_VARIANTS
    args.variants = (
        [v.strip() for v in args.variants.split(",") if v.strip()]
        if args.variants
        else list(allowed)
    )
    unknown = sorted(set(args.variants) - set(allowed))
    if unknown:
        p.error(f"unknown variants {unknown} on {args.device.type}; choose from {allowed}")
    keys = ("experiences", "train_patterns", "fleet", "repeats", "threads", "batch_size", "seeds")
    for key in keys:
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1")
    return args


def _label(name: str, k: int) -> str:
    return name.replace("fleet", f"fleet{k}").replace("seq", f"seq{k}")


def main(argv: list[str] | None = None) -> int:
    from agem.benchmarks import Benchmark, Experience, Stream

    cfg = parse_args(argv)
    torch.set_num_threads(cfg.threads)
    if cfg.protocol:
        from protocol_timing import run_protocol

        table = run_protocol(cfg)
        if cfg.json is not None:
            cfg.json.write_text(json.dumps(table, indent=2) + "\n")
        return 0
    bm, data_name = permuted_fashion(
        cfg.experiences, seed=cfg.seed, train_subset=cfg.train_patterns, synthetic=cfg.synthetic
    )
    dev = cfg.device
    train_data = [(x.to(dev), y.to(dev)) for x, y in stream_tensors(bm.train_stream)]
    test_data = [(x.to(dev), y.to(dev)) for x, y in stream_tensors(bm.test_stream)]
    steps = sum(math.ceil(len(y) / cfg.batch_size) for _, y in train_data)
    # Untimed warm-up of every variant on a small part (imports, allocator, cuBLAS).
    first = torch.arange(min(300, cfg.train_patterns))
    small = [Experience(e.dataset.subset(first), i) for i, e in enumerate(bm.train_stream[:2])]
    part = Benchmark(Stream("train", small), Stream("test", small))
    part_data = [(x[first.to(dev)], y[first.to(dev)]) for x, y in train_data[:2]]
    for name in cfg.variants:
        run_variant(name, cfg.seed, cfg, part, part_data)
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(
        f"{data_name}: {cfg.experiences} experiences x {cfg.train_patterns} patterns "
        f"({steps} steps per run), MLP 784-256-256-10, minibatch {cfg.batch_size}, "
        f"memory {cfg.patterns_per_experience}/experience, sample {cfg.sample_size}; "
        f"{device_name}, {cfg.threads} threads, torch {torch.__version__}",
        flush=True,
    )
    ms: dict[str, list[float]] = {v: [] for v in cfg.variants}
    acc: dict[str, list[float]] = {v: [] for v in cfg.variants}
    runs: dict[str, int] = {}
    for r in range(cfg.repeats):
        order = cfg.variants[r % len(cfg.variants) :] + cfg.variants[: r % len(cfg.variants)]
        for name in order:
            seconds, models, k = run_variant(name, cfg.seed + r, cfg, bm, train_data)
            runs[name] = k
            ms[name].append(1000 * seconds / (steps * k))
            acc[name].append(statistics.fmean(average_accuracy(m, test_data) for m in models))
            print(
                f"repeat {r} {_label(name, cfg.fleet):>14}: {seconds:7.2f} s  "
                f"{ms[name][-1]:7.3f} ms/run-step  A_T {acc[name][-1]:.4f}",
                flush=True,
            )
    med = {v: statistics.median(x) for v, x in ms.items()}
    print(f"\n{'variant':<14} {'runs':>4} {'ms/run-step':>12} {'ms/step':>9} {'A_T':>7}")
    for v in cfg.variants:
        a_t = statistics.fmean(acc[v])
        k = runs[v]
        print(f"{_label(v, cfg.fleet):<14} {k:>4} {med[v]:12.3f} {med[v] * k:9.3f} {a_t:7.4f}")
    compare: Callable[[str, str], None] = lambda a, b: print(  # noqa: E731
        f"{_label(a, cfg.fleet)} vs {_label(b, cfg.fleet)}: {med[b] / med[a]:.2f}x throughput"
    )
    pairs = [("fleet", "seq"), ("fleet", "agem"), ("agem_graph", "agem")]
    pairs += [("fleet_graph", "agem"), ("naive_graph", "naive"), ("agem", "hand_agem")]
    for a, b in pairs:
        if a in med and b in med:
            compare(a, b)
    if cfg.json is not None:
        out = {
            "data": data_name, "device": device_name, "steps_per_run": steps,
            "config": {k: str(v) if isinstance(v, (Path, torch.device)) else v
                       for k, v in vars(cfg).items()},
            "ms_per_run_step": ms, "median_ms_per_run_step": med, "A_T": acc, "runs": runs,
        }  # fmt: skip
        cfg.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
