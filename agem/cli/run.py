"""`agem run`: train one strategy on one benchmark and write a run folder."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from agem.cli.factory import build_model, build_strategy

STRATEGY_OPTIONS = (
    "patterns_per_experience",
    "sample_size",
    "sampling",
    "memory_strength",
    "mem_size",
    "ewc_lambda",
    "ewc_mode",
    "decay_factor",
)


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """Every option of the run, with defaults filled in (written as config.json)."""
    from agem.benchmarks.registry import get

    spec = get(args.benchmark)
    out = args.out or f"runs/{args.benchmark}-{args.strategy}-seed{args.seed}"
    return {
        "benchmark": args.benchmark,
        "n_experiences": args.n_experiences or spec.default_experiences,
        "data_dir": args.data_dir,
        "download": not args.no_download,
        "task_labels": args.task_labels,
        "strategy": args.strategy,
        "model": args.model,
        "hidden_sizes": list(args.hidden_sizes),
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "eval_batch_size": args.eval_batch_size,
        "seed": args.seed,
        "device": args.device,
        "threads": args.threads,
        "out": str(out),
        "strategy_options": {k: getattr(args, k) for k in STRATEGY_OPTIONS},
    }


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r} (try cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def format_matrix(matrix: list[list[float]]) -> str:
    """The accuracy matrix as text: one row per trained experience."""
    if not matrix:
        return "(empty accuracy matrix)"
    head = "after \\ on " + " ".join(f"{j:>6d}" for j in range(len(matrix[0])))
    rows = [f"{i:>11d} " + " ".join(f"{v:6.3f}" for v in row) for i, row in enumerate(matrix)]
    return "\n".join([head, *rows])


def run(config: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate as `config` says; write config.json and results.json."""
    from agem.benchmarks.registry import get

    device = _device(config["device"])
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    spec = get(config["benchmark"])
    data_dir = Path(config["data_dir"]) if config["data_dir"] else None
    benchmark = spec.build(
        n_experiences=config["n_experiences"],
        seed=config["seed"],
        task_labels=config["task_labels"],
        data_dir=data_dir,
        download=config["download"],
    )
    torch.manual_seed(config["seed"])  # the model's initial weights
    model = build_model(config["model"], benchmark, hidden_sizes=tuple(config["hidden_sizes"]))
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"])
    common = {
        "train_mb_size": config["batch_size"],
        "train_epochs": config["epochs"],
        "eval_mb_size": config["eval_batch_size"],
        "device": device,
        "seed": config["seed"],
    }
    strategy = build_strategy(
        config["strategy"], model, optimizer, config["strategy_options"], common
    )
    out = Path(config["out"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    strategy.eval(benchmark.test_stream)  # the untrained model: b_j for forward transfer
    start = time.perf_counter()
    train_seconds = 0.0
    for experience in benchmark.train_stream:
        t0 = time.perf_counter()
        strategy.train(experience)
        train_seconds += time.perf_counter() - t0
        strategy.eval(benchmark.test_stream)
    assert strategy.evaluator is not None
    results = dict(strategy.evaluator.summary())
    results.update(
        {
            "strategy": config["strategy"],
            "benchmark": config["benchmark"],
            "seed": config["seed"],
            "train_seconds": train_seconds,
            "total_seconds": time.perf_counter() - start,
        }
    )
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    config = resolve_config(args)
    results = run(config)
    print(format_matrix(results["accuracy_matrix"]))
    metrics = "  ".join(
        f"{k}={results[k]:.4f}" for k in ("A_T", "F_T", "BWT", "FWT") if k in results
    )
    print(metrics)
    print(f"run folder: {config['out']}")
    return results
