"""Speed benchmark: `agem.AGEM` / `agem.Naive` against minimal hand-written PyTorch loops.

The setting is the A-GEM paper's MNIST one on Permuted Fashion-MNIST (or a synthetic
stand-in when the IDX files are missing): 10 experiences x 10,000 training patterns, MLP
784-256-256-10, SGD lr 0.1, minibatch 10, 1 epoch, 250 memory patterns per experience,
reference sample 256, 2 torch threads. In one process, alternating, for each repeat:

  (a) agem.AGEM               (b) a minimal hand-written A-GEM loop (below)
  (c) agem.Naive              (d) a minimal hand-written fine-tuning loop

All four start from the same initial weights and see the same data; the hand loops use
the same random streams as the library (shuffling, memory selection, memory sampling),
so matching accuracies are a check that both compute the same thing. Only training is
timed; the final average accuracy A_T is measured afterwards with one shared function.
Wall-clock timings on a shared machine are noisy: compare the ratios, which come from
alternating runs under the same load; process CPU time is printed too (with --threads 1
it is the least disturbed by other processes).

    python scripts/benchmark_agem.py                      # the full setting
    python scripts/benchmark_agem.py --experiences 3 --train-patterns 1000 --repeats 1
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agem.plugins.agem import SAMPLE_SEED_OFFSET

FASHION_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
VARIANTS = ("agem", "hand_agem", "naive", "hand_naive")


# ---- data ------------------------------------------------------------------------------
def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip) as a numpy array: magic, dims, then big-endian uint8 data."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion_tensors() -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]] | None:
    for root in FASHION_DIRS:
        names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
        names += ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
        if all((root / n).exists() for n in names):
            arrays = [torch.from_numpy(_read_idx(root / n).copy()) for n in names]
            return (arrays[0], arrays[1].long()), (arrays[2], arrays[3].long())
    return None


def _synthetic_tensors(
    seed: int, n_train: int = 60000, n_test: int = 10000
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """A learnable 10-class stand-in with Fashion-MNIST's shapes: noisy class prototypes."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(10, 28, 28, generator=g) * 255

    def draw(n: int) -> tuple[Tensor, Tensor]:
        y = torch.randint(0, 10, (n,), generator=g)
        x = protos[y] + 60 * torch.randn(n, 28, 28, generator=g)
        return x.clamp(0, 255).to(torch.uint8), y

    return draw(n_train), draw(n_test)


def permuted_fashion(
    n_experiences: int,
    *,
    seed: int,
    train_subset: int | None,
    synthetic: bool = False,
    task_labels: bool = False,
) -> tuple[Any, str]:
    """Permuted Fashion-MNIST as an `agem` Benchmark (synthetic data if the files are absent;
    `task_labels`: experience i has task label i)."""
    import agem

    if not synthetic:
        builder = getattr(agem.benchmarks, "permuted_fashion_mnist", None)
        if builder is not None:
            try:
                bm = builder(
                    n_experiences, seed=seed, train_subset=train_subset, task_labels=task_labels
                )
                return bm, "Permuted Fashion-MNIST"
            except (FileNotFoundError, RuntimeError, ValueError):
                pass
        tensors = _fashion_tensors()
        if tensors is not None:
            from agem.benchmarks.protocols import permuted

            bm = permuted(
                *tensors,
                n_experiences,
                seed=seed,
                name="permuted_fashion_mnist",
                train_subset=train_subset,
                task_labels=task_labels,
            )
            return bm, "Permuted Fashion-MNIST"
    from agem.benchmarks.protocols import permuted

    n_train = 60000 if train_subset is None else min(train_subset, 60000)
    bm = permuted(
        *_synthetic_tensors(seed, n_train, min(n_train, 10000)),
        n_experiences,
        seed=seed,
        name="permuted_synthetic",
        train_subset=train_subset,
        task_labels=task_labels,
    )
    return bm, "synthetic Permuted stand-in"


def stream_tensors(stream: Any) -> list[tuple[Tensor, Tensor]]:
    """Each experience's model inputs (transform applied once) and labels."""
    out = []
    for exp in stream:
        x, y, _ = exp.dataset.batch(slice(None))
        out.append((x.contiguous(), y))
    return out


# ---- the four trainers -----------------------------------------------------------------
def train_agem(model: nn.Module, bm: Any, cfg: argparse.Namespace, seed: int) -> None:
    import agem

    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    strategy = agem.AGEM(
        model, opt, patterns_per_experience=cfg.patterns_per_experience,
        sample_size=cfg.sample_size, train_mb_size=cfg.batch_size, train_epochs=1,
        evaluator=False, seed=seed,
    )  # fmt: skip
    for exp in bm.train_stream:
        strategy.train(exp)


def train_naive(model: nn.Module, bm: Any, cfg: argparse.Namespace, seed: int) -> None:
    import agem

    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    strategy = agem.Naive(model, opt, train_mb_size=cfg.batch_size, evaluator=False, seed=seed)
    for exp in bm.train_stream:
        strategy.train(exp)


def hand_agem(
    model: nn.Module, data: list[tuple[Tensor, Tensor]], cfg: argparse.Namespace, seed: int
) -> None:
    """A minimal A-GEM loop, as a researcher would write it."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=cfg.lr)
    shuffle = torch.Generator().manual_seed(seed)
    pick = torch.Generator().manual_seed(seed)
    sample = torch.Generator().manual_seed(seed + SAMPLE_SEED_OFFSET)  # as AGEMPlugin does
    mem_x: Tensor | None = None
    mem_y: Tensor | None = None
    bs, k = cfg.batch_size, cfg.sample_size
    for x, y in data:
        n = len(y)
        perm = torch.randperm(n, generator=shuffle)
        xs, ys = x[perm], y[perm]
        for i in range(0, n, bs):
            g_ref = None
            if mem_x is not None and mem_y is not None:
                if len(mem_y) > k:
                    idx = torch.randperm(len(mem_y), generator=sample)[:k]
                    rx, ry = mem_x[idx], mem_y[idx]
                else:
                    rx, ry = mem_x, mem_y
                opt.zero_grad()
                F.cross_entropy(model(rx), ry).backward()
                g_ref = torch.cat([p.grad.reshape(-1) for p in params])
            opt.zero_grad()
            F.cross_entropy(model(xs[i : i + bs]), ys[i : i + bs]).backward()
            if g_ref is not None:
                g = torch.cat([p.grad.reshape(-1) for p in params])
                dot = g @ g_ref
                if dot < 0:
                    g -= (dot / (g_ref @ g_ref)) * g_ref
                    offset = 0
                    for p in params:
                        p.grad.copy_(g[offset : offset + p.numel()].view_as(p))
                        offset += p.numel()
            opt.step()
        sel = torch.randperm(n, generator=pick)[: cfg.patterns_per_experience]
        mem_x = x[sel] if mem_x is None else torch.cat([mem_x, x[sel]])
        mem_y = y[sel] if mem_y is None else torch.cat([mem_y, y[sel]])


def hand_naive(
    model: nn.Module, data: list[tuple[Tensor, Tensor]], cfg: argparse.Namespace, seed: int
) -> None:
    """A minimal fine-tuning loop."""
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    shuffle = torch.Generator().manual_seed(seed)
    bs = cfg.batch_size
    for x, y in data:
        perm = torch.randperm(len(y), generator=shuffle)
        xs, ys = x[perm], y[perm]
        for i in range(0, len(y), bs):
            opt.zero_grad()
            F.cross_entropy(model(xs[i : i + bs]), ys[i : i + bs]).backward()
            opt.step()


@torch.no_grad()
def average_accuracy(model: nn.Module, test: list[tuple[Tensor, Tensor]]) -> float:
    """A_T: mean test accuracy over all experiences, after training on all of them."""
    model.eval()
    accs = []
    for x, y in test:
        correct = sum(
            int((model(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum())
            for i in range(0, len(y), 1000)
        )
        accs.append(correct / len(y))
    model.train()
    return sum(accs) / len(accs)


# ---- main ------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiences", type=int, default=10)
    p.add_argument("--train-patterns", type=int, default=10000, help="per experience")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument(
        "--seed", type=int, default=0, help="data, weights; repeat r shuffles with seed+r"
    )
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--patterns-per-experience", type=int, default=250)
    p.add_argument("--sample-size", type=int, default=256)
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    p.add_argument("--synthetic", action="store_true", help="use the synthetic stand-in data")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    for name in ("experiences", "train_patterns", "repeats", "threads", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    import agem

    cfg = parse_args(argv)
    torch.set_num_threads(cfg.threads)
    bm, data_name = permuted_fashion(
        cfg.experiences, seed=cfg.seed, train_subset=cfg.train_patterns, synthetic=cfg.synthetic
    )
    train_data = stream_tensors(bm.train_stream)  # for the hand loops, made before timing
    test_data = stream_tensors(bm.test_stream)
    torch.manual_seed(cfg.seed)
    init = agem.models.MLP(784, (256, 256), 10).state_dict()
    runners: dict[str, Callable[[nn.Module, int, Any, list[tuple[Tensor, Tensor]]], None]] = {
        "agem": lambda m, s, b, d: train_agem(m, b, cfg, s),
        "hand_agem": lambda m, s, b, d: hand_agem(m, d, cfg, s),
        "naive": lambda m, s, b, d: train_naive(m, b, cfg, s),
        "hand_naive": lambda m, s, b, d: hand_naive(m, d, cfg, s),
    }
    # Warm-up, untimed: one-off costs (torch.optim's first use imports torch._dynamo,
    # allocator and thread-pool start-up) must not land on whichever variant runs first.
    from agem.benchmarks import Benchmark, Experience, Stream

    first = torch.arange(min(500, cfg.train_patterns))
    small = [Experience(e.dataset.subset(first), i) for i, e in enumerate(bm.train_stream[:2])]
    part = Benchmark(Stream("train", small), Stream("test", small))
    part_data = [(x[first], y[first]) for x, y in train_data[:2]]
    for name in cfg.variants:
        runners[name](agem.models.MLP(784, (256, 256), 10), cfg.seed, part, part_data)
    print(
        f"{data_name}: {cfg.experiences} experiences x {len(train_data[0][1])} patterns, "
        f"MLP 784-256-256-10, SGD lr {cfg.lr}, minibatch {cfg.batch_size}, 1 epoch, "
        f"memory {cfg.patterns_per_experience}/experience, sample {cfg.sample_size}, "
        f"{cfg.threads} threads, torch {torch.__version__}",
        flush=True,
    )
    seconds: dict[str, list[float]] = {v: [] for v in cfg.variants}
    cpu: dict[str, list[float]] = {v: [] for v in cfg.variants}
    accuracy: dict[str, list[float]] = {v: [] for v in cfg.variants}
    for r in range(cfg.repeats):
        order = cfg.variants[r % len(cfg.variants) :] + cfg.variants[: r % len(cfg.variants)]
        for name in order:
            model = agem.models.MLP(784, (256, 256), 10)
            model.load_state_dict(copy.deepcopy(init))
            start, start_cpu = time.perf_counter(), time.process_time()
            runners[name](model, cfg.seed + r, bm, train_data)
            seconds[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            accuracy[name].append(average_accuracy(model, test_data))
            print(
                f"repeat {r} {name:>10}: {seconds[name][-1]:7.2f} s  "
                f"(CPU {cpu[name][-1]:7.2f} s)  A_T {accuracy[name][-1]:.4f}",
                flush=True,
            )
    med = {v: statistics.median(s) for v, s in seconds.items()}
    med_cpu = {v: statistics.median(s) for v, s in cpu.items()}
    acc = {v: statistics.fmean(a) for v, a in accuracy.items()}
    print("\nvariant      median s   median CPU s   mean A_T")
    for v in cfg.variants:
        print(f"{v:<12} {med[v]:8.2f}   {med_cpu[v]:12.2f}   {acc[v]:.4f}")
    ratios: dict[str, float] = {}
    for a, b in (("agem", "hand_agem"), ("naive", "hand_naive")):
        if a in med and b in med:
            ratios[f"{a}/{b}"] = med[a] / med[b]
            ratios[f"{a}/{b} CPU"] = med_cpu[a] / med_cpu[b]
            per = [x / y for x, y in zip(seconds[a], seconds[b], strict=True)]
            print(
                f"ratio {a}/{b}: {ratios[f'{a}/{b}']:.3f} (median wall seconds; per repeat "
                + ", ".join(f"{q:.3f}" for q in per)
                + f"), {ratios[f'{a}/{b} CPU']:.3f} (median CPU seconds); "
                + f"A_T difference {acc[a] - acc[b]:+.4f}"
            )
    if cfg.json is not None:
        cfg.json.write_text(
            json.dumps(
                {
                    "data": data_name,
                    "config": {
                        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()
                    },
                    "seconds": seconds,
                    "cpu_seconds": cpu,
                    "accuracy": accuracy,
                    "median_seconds": med,
                    "mean_accuracy": acc,
                    "ratios": ratios,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
