"""A-GEM memory sampling study: "uniform" (the paper's) against "balanced".

Runs `agem.AGEM` with each sampling (and optionally `agem.Naive` for scale) on Permuted
Fashion-MNIST, 10 experiences x 10,000 training patterns, in the A-GEM paper's setting
(MLP 784-256-256-10, SGD lr 0.1, minibatch 10, 1 epoch, 250 memory patterns per
experience, sample 256), once per seed. Seed s fixes the permutations, the training
subset, the initial weights and the strategy's generators, so methods are compared on
paired runs. Prints mean and standard deviation of A_T and F_T per method and the
paired difference uniform - balanced with its standard error.

    python scripts/sampling_study.py --seeds 0-4 --methods uniform,balanced,naive \\
        --jsonl /tmp/sampling.jsonl      # results are appended; finished runs are skipped
    python scripts/sampling_study.py --experiences 3 --train-patterns 1000 --seeds 0,1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_agem import permuted_fashion

METHODS = ("uniform", "balanced", "naive")


def run_one(method: str, seed: int, cfg: argparse.Namespace) -> dict[str, Any]:
    """Train `method` on the benchmark of `seed`; evaluate after every experience."""
    import agem

    bm, data_name = permuted_fashion(
        cfg.experiences, seed=seed, train_subset=cfg.train_patterns, synthetic=cfg.synthetic
    )
    torch.manual_seed(seed)
    model = agem.models.MLP(784, (256, 256), 10)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    common: dict[str, Any] = {
        "train_mb_size": cfg.batch_size,
        "train_epochs": 1,
        "eval_mb_size": 1000,
        "seed": seed,
    }
    if method == "naive":
        strategy: agem.BaseTemplate = agem.Naive(model, opt, **common)
    else:
        strategy = agem.AGEM(
            model,
            opt,
            patterns_per_experience=cfg.patterns_per_experience,
            sample_size=cfg.sample_size,
            sampling=method,
            **common,
        )
    start = time.perf_counter()
    for exp in bm.train_stream:
        strategy.train(exp)
        strategy.eval(bm.test_stream)
    assert strategy.evaluator is not None
    summary = strategy.evaluator.summary()
    return {
        "method": method,
        "seed": seed,
        "data": data_name,
        "experiences": cfg.experiences,
        "train_patterns": cfg.train_patterns,
        "A_T": summary["A_T"],
        "F_T": summary["F_T"],
        "accuracy_matrix": summary["accuracy_matrix"],
        "seconds": time.perf_counter() - start,
    }


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part.strip()[1:]:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        elif part.strip():
            out.append(int(part))
    return out


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {std:.4f}"


def report(results: list[dict[str, Any]], methods: list[str], seeds: list[int]) -> str:
    """A markdown table of A_T and F_T per method, plus the paired uniform - balanced gap."""
    by = {(r["method"], r["seed"]): r for r in results}
    lines = [
        "| method | seeds | A_T (mean ± std) | F_T (mean ± std) |",
        "|---|---|---|---|",
    ]
    for m in methods:
        runs = [by[(m, s)] for s in seeds if (m, s) in by]
        if runs:
            a = [r["A_T"] for r in runs]
            f = [r["F_T"] for r in runs]
            lines.append(f"| {m} | {len(runs)} | {_mean_std(a)} | {_mean_std(f)} |")
    paired = [s for s in seeds if ("uniform", s) in by and ("balanced", s) in by]
    if len(paired) > 1:
        lines.append("")
        for metric in ("A_T", "F_T"):
            d = [by[("uniform", s)][metric] - by[("balanced", s)][metric] for s in paired]
            se = statistics.stdev(d) / len(d) ** 0.5
            lines.append(
                f"uniform - balanced, {metric}: {statistics.fmean(d):+.4f} "
                f"(paired over {len(d)} seeds; standard error {se:.4f})"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=_seeds, default=_seeds("0-4"), help="e.g. 0-4 or 0,2,5")
    p.add_argument("--methods", default="uniform,balanced", help=f"from {', '.join(METHODS)}")
    p.add_argument("--experiences", type=int, default=10)
    p.add_argument("--train-patterns", type=int, default=10000, help="per experience")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--patterns-per-experience", type=int, default=250)
    p.add_argument("--sample-size", type=int, default=256)
    p.add_argument("--synthetic", action="store_true", help="use the synthetic stand-in data")
    p.add_argument("--jsonl", type=Path, default=None, help="append results; skip finished runs")
    cfg = p.parse_args(argv)
    methods = [m.strip() for m in cfg.methods.split(",") if m.strip()]
    if not methods or set(methods) - set(METHODS):
        p.error(f"--methods must be a comma-separated subset of {', '.join(METHODS)}")
    torch.set_num_threads(cfg.threads)
    results: list[dict[str, Any]] = []
    key = (cfg.experiences, cfg.train_patterns)
    if cfg.jsonl is not None and cfg.jsonl.exists():
        for line in cfg.jsonl.read_text().splitlines():
            r = json.loads(line)
            if (r["experiences"], r["train_patterns"]) == key:
                results.append(r)
    done = {(r["method"], r["seed"]) for r in results}
    for seed in cfg.seeds:
        for m in methods:
            if (m, seed) in done:
                continue
            r = run_one(m, seed, cfg)
            results.append(r)
            print(
                f"{m:>8} seed {seed}: A_T {r['A_T']:.4f}  F_T {r['F_T']:.4f}  ({r['data']})",
                flush=True,
            )
            if cfg.jsonl is not None:
                with cfg.jsonl.open("a") as f:
                    f.write(json.dumps(r) + "\n")
    print(report(results, methods, cfg.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
