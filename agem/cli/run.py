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
        "train_subset": getattr(args, "train_subset", None),
        "experiences": getattr(args, "experiences", None),
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
        "lca_beta": None if getattr(args, "no_lca", False) else getattr(args, "lca_beta", 10),
        "lca_test_size": getattr(args, "lca_test_size", 500),
        "log_every": getattr(args, "log_every", 10),
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


def run(config: dict[str, Any], *, progress: bool | None = None) -> dict[str, Any]:
    """Train and evaluate as `config` says and write the run folder `config["out"]`.

    The folder gets config.json, results.json (accuracy matrix, every metric, timing and
    peak memory), metrics.csv, TensorBoard events and PNG plots. The test stream is
    evaluated before training (b_j) and after every experience; LCA curves are recorded
    on at most `lca_test_size` test samples. `progress` forces progress bars on or off
    (default: on when stderr is a terminal). Returns the results written.
    """
    from agem.benchmarks.registry import get
    from agem.plugins.evaluation import EvaluationPlugin
    from agem.plugins.loggers import (
        ConsoleLogger,
        CSVLogger,
        JSONResultsWriter,
        TensorBoardLogger,
    )
    from agem.reporting.plots import write_run_plots

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
        train_subset=config.get("train_subset"),
    )
    if config.get("experiences"):
        from agem.benchmarks.ranges import parse_range, select_experiences

        benchmark = select_experiences(benchmark, *parse_range(config["experiences"]))
    torch.manual_seed(config["seed"])  # the model's initial weights
    model = build_model(config["model"], benchmark, hidden_sizes=tuple(config["hidden_sizes"]))
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"])
    out = Path(config["out"])
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    except OSError as err:
        raise ValueError(f"cannot write the run folder {out}: {err.strerror or err}") from None

    lca_size = config.get("lca_test_size", 500)
    evaluator = EvaluationPlugin(
        eval_stream=benchmark.test_stream,
        eval_every="experience",
        lca_beta=config.get("lca_beta", 10),
        lca_test_size=lca_size or None,  # 0: the whole test set
    )
    every = config.get("log_every", 10)
    results_writer = JSONResultsWriter(
        out / "results.json",
        extra={
            "strategy": config["strategy"],
            "benchmark": config["benchmark"],
            "n_experiences": config["n_experiences"],
            "seed": config["seed"],
        },
    )
    tensorboard = TensorBoardLogger(out, every=every)
    loggers = [
        ConsoleLogger(interactive=progress),
        CSVLogger(out / "metrics.csv", every=every),
        tensorboard,
        results_writer,
    ]
    common = {
        "train_mb_size": config["batch_size"],
        "train_epochs": config["epochs"],
        "eval_mb_size": config["eval_batch_size"],
        "device": device,
        "seed": config["seed"],
        "plugins": loggers,
        "evaluator": evaluator,
    }
    strategy = build_strategy(
        config["strategy"], model, optimizer, config["strategy_options"], common
    )
    start = time.perf_counter()
    try:
        strategy.train(benchmark.train_stream)
    finally:
        tensorboard.close()
    results_writer.extra["total_seconds"] = time.perf_counter() - start
    results = results_writer.write(strategy)
    write_run_plots(results, out)
    return results


def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    config = resolve_config(args)
    results = run(config)
    print(format_matrix(results["accuracy_matrix"]))
    lca = config.get("lca_beta")
    keys = ("A_T", "F_T", "BWT", "FWT", *([f"LCA_{lca}"] if lca is not None else []))
    metrics = "  ".join(f"{k}={results[k]:.4f}" for k in keys if results.get(k) is not None)
    print(metrics)
    rss = results.get("peak_rss_bytes")
    memory = f", peak memory {rss / 2**20:.0f} MiB" if rss else ""
    print(f"training {results['train_seconds']:.1f} s{memory}")
    print(f"run folder: {config['out']}")
    return results
