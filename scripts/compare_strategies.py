"""Compare Naive, EWC, Replay, GEM, A-GEM and Cumulative on Permuted Fashion-MNIST.

The setting is the A-GEM paper's MNIST one, on Fashion-MNIST: 10 experiences x 10,000
training patterns (the same subset, one pixel permutation per experience; the full
10,000-image test set per experience), MLP 784-256-256-10, SGD lr 0.1, minibatch 10,
1 epoch, seed 0 (data, initial weights, shuffling and memories). Method settings:

- GEM and A-GEM: 250 memory patterns per experience; A-GEM's reference sample 256;
  GEM's memory_strength (margin) 0.5, the library default.
- Replay: a reservoir buffer of 2,500 samples, the same final memory budget as GEM and
  A-GEM (250 x 10); every minibatch of 10 is joined by 10 replayed samples.
- EWC: separate mode (one penalty term per past experience, empirical Fisher from
  per-sample gradients), lambda 10, chosen among {1, 10, 100, 1000} on a disjoint
  validation stream (3 experiences with the permutations of seed 1), as the A-GEM
  protocol does: lambda 1 forgot more (F_T 0.14 vs 0.02), 100 and 1000 diverged (with
  SGD lr 0.1 the penalty is unstable once lr * lambda * sum_k F_k exceeds about 2).
- Cumulative: retrains on all data seen so far (1 epoch over the union per experience).

Every strategy starts from the same initial weights. Only `strategy.train` is timed
(evaluation after each experience is not). Reported: A_T and F_T (`agem.metrics`),
training seconds, and GEM's training time divided by A-GEM's. Timings on a shared or
busy machine are indicative only; use `--threads` to pin torch's thread count.

    python scripts/compare_strategies.py                  # the full setting (minutes)
    python scripts/compare_strategies.py --experiences 3 --train-patterns 1000   # quick
    python scripts/compare_strategies.py --strategies gem,agem --out runs/compare

It writes `<out>/compare.md` (the table) and `<out>/compare.json` (every metric and the
accuracy matrices), and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

STRATEGIES = ("naive", "ewc", "replay", "gem", "agem", "cumulative")
LABELS = {
    "naive": "Naive",
    "ewc": "EWC",
    "replay": "Replay",
    "gem": "GEM",
    "agem": "A-GEM",
    "cumulative": "Cumulative",
}
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiences", type=int, default=10)
    p.add_argument("--train-patterns", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--patterns-per-experience", type=int, default=250)
    p.add_argument("--sample-size", type=int, default=256)
    p.add_argument("--memory-strength", type=float, default=0.5)
    p.add_argument("--mem-size", type=int, default=2500)
    p.add_argument("--ewc-lambda", type=float, default=10.0)
    p.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help=f"comma-separated, from {','.join(STRATEGIES)} (default: all)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX folder (default: search)")
    p.add_argument("--out", default="runs/compare_strategies", help="output folder")
    args = p.parse_args(argv)
    names = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown or not names:
        p.error(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    args.strategy_list = names
    return args


def load_benchmark(args: argparse.Namespace) -> Any:
    """Permuted Fashion-MNIST (`agem.benchmarks.permuted_fashion_mnist`, found offline)."""
    import agem

    root = args.data_dir
    if root is None and FASHION_DIR.exists():
        root = str(FASHION_DIR)
    return agem.benchmarks.permuted_fashion_mnist(
        args.experiences,
        seed=args.seed,
        train_subset=args.train_patterns,
        root=root,
        download=False,
    )


def build(name: str, model: torch.nn.Module, args: argparse.Namespace) -> Any:
    """The strategy `name` with this script's settings."""
    import agem

    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    common: dict[str, Any] = {
        "train_mb_size": args.batch_size,
        "train_epochs": 1,
        "eval_mb_size": 1000,
        "seed": args.seed,
    }
    if name == "naive":
        return agem.Naive(model, opt, **common)
    if name == "ewc":
        return agem.EWC(model, opt, ewc_lambda=args.ewc_lambda, mode="separate", **common)
    if name == "replay":
        return agem.Replay(model, opt, mem_size=args.mem_size, **common)
    if name == "gem":
        return agem.GEM(
            model,
            opt,
            patterns_per_experience=args.patterns_per_experience,
            memory_strength=args.memory_strength,
            **common,
        )
    if name == "agem":
        return agem.AGEM(
            model,
            opt,
            patterns_per_experience=args.patterns_per_experience,
            sample_size=args.sample_size,
            **common,
        )
    if name == "cumulative":
        return agem.Cumulative(model, opt, **common)
    raise ValueError(f"unknown strategy {name!r}")


def run_one(name: str, bm: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Train `name` on every experience, evaluating on the test stream after each."""
    import agem

    torch.manual_seed(args.seed)  # identical initial weights for every strategy
    model = agem.models.MLP(784, (256, 256), 10)
    strategy = build(name, model, args)
    strategy.eval(bm.test_stream)  # the untrained model (for FWT)
    seconds = 0.0
    for exp in bm.train_stream:
        t0 = time.perf_counter()
        strategy.train(exp)
        seconds += time.perf_counter() - t0
        metrics = strategy.eval(bm.test_stream)
        print(
            f"  {LABELS[name]:<10s} exp {exp.current_experience}: "
            f"mean accuracy {metrics['accuracy/stream']:.4f}  ({seconds:.1f} s training)",
            flush=True,
        )
    summary = dict(strategy.evaluator.summary())
    summary["train_seconds"] = seconds
    return summary


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """The results as a markdown table, plus GEM's time over A-GEM's when both ran."""
    lines = [
        "| Strategy | A_T | F_T | Training time (s) |",
        "|---|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {LABELS[name]} | {r['A_T']:.4f} | {r['F_T']:.4f} | {r['train_seconds']:.1f} |"
        )
    if "gem" in results and "agem" in results:
        ratio = results["gem"]["train_seconds"] / results["agem"]["train_seconds"]
        lines += ["", f"GEM training time / A-GEM training time: {ratio:.2f}x"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    bm = load_benchmark(args)
    print(
        f"Permuted Fashion-MNIST: {bm.n_experiences} experiences x "
        f"{len(bm.train_stream[0].dataset)} training patterns; torch threads "
        f"{torch.get_num_threads()}",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    for name in args.strategy_list:
        results[name] = run_one(name, bm, args)
    table = markdown(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(table)
    settings = {k: v for k, v in vars(args).items() if k != "strategy_list"}
    (out / "compare.json").write_text(
        json.dumps({"settings": settings, "results": results}, indent=2) + "\n"
    )
    print()
    print(table, end="")
    print(f"written: {out / 'compare.md'}, {out / 'compare.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
