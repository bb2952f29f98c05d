"""`agem run`: train one strategy on one benchmark and write a run folder."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agem.benchmarks.streams import Experience
from agem.cli.factory import build_model, build_strategy
from agem.template import BaseTemplate

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
        "fleet": getattr(args, "fleet", 1),
        "cuda_graph": getattr(args, "cuda_graph", False),
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


@dataclass
class PreparedRun:
    """A run built from its config and ready to train: what `finish_run` needs after."""

    config: dict[str, Any]
    strategy: BaseTemplate
    train_stream: Sequence[Experience]
    results_writer: Any
    tensorboard: Any


def run(config: dict[str, Any], *, progress: bool | None = None) -> dict[str, Any]:
    """Train and evaluate as `config` says and write the run folder `config["out"]`.

    The folder gets config.json, results.json (accuracy matrix, every metric, timing and
    peak memory), metrics.csv, TensorBoard events and PNG plots. The test stream is
    evaluated before training (b_j) and after every experience; LCA curves are recorded
    on at most `lca_test_size` test samples. `progress` forces progress bars on or off
    (default: on when stderr is a terminal). Returns the results written.
    """
    prepared = prepare_run(config, progress=progress)
    start = time.perf_counter()
    try:
        prepared.strategy.train(prepared.train_stream)
    finally:
        prepared.tensorboard.close()
    return finish_run(prepared, seconds=time.perf_counter() - start)


def prepare_run(
    config: dict[str, Any],
    *,
    progress: bool | None = None,
    console: bool = True,
    capture: bool = True,
) -> PreparedRun:
    """Build the benchmark, model, strategy and loggers of `config`; write config.json.

    `console=False` leaves out the console logger (the fleet reports one run of K);
    `capture=False` builds the strategy without its own CUDA graph (the fleet captures).
    """
    from agem.benchmarks.registry import get
    from agem.plugins.evaluation import EvaluationPlugin
    from agem.plugins.loggers import (
        ConsoleLogger,
        CSVLogger,
        JSONResultsWriter,
        TensorBoardLogger,
    )

    device = _device(config["device"])
    if config.get("cuda_graph"):
        from agem.cuda_graph import check_cuda_device

        if config["strategy"] not in ("naive", "agem"):
            raise ValueError(f"--cuda-graph supports naive and agem, not {config['strategy']}")
        check_cuda_device(device)
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
        *([ConsoleLogger(interactive=progress)] if console else []),
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
    if config.get("cuda_graph") and capture:
        common["cuda_graph"] = True
    strategy = build_strategy(
        config["strategy"], model, optimizer, config["strategy_options"], common
    )
    return PreparedRun(config, strategy, benchmark.train_stream, results_writer, tensorboard)


def finish_run(prepared: PreparedRun, *, seconds: float) -> dict[str, Any]:
    """Write results.json (with the training wall time `seconds`) and the plots."""
    from agem.reporting.plots import write_run_plots

    prepared.results_writer.extra["total_seconds"] = seconds
    results: dict[str, Any] = prepared.results_writer.write(prepared.strategy)
    write_run_plots(results, Path(prepared.config["out"]))
    return results


def _metrics_line(results: dict[str, Any], lca: int | None) -> str:
    keys = ("A_T", "F_T", "BWT", "FWT", *([f"LCA_{lca}"] if lca is not None else []))
    return "  ".join(f"{k}={results[k]:.4f}" for k in keys if results.get(k) is not None)


def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    config = resolve_config(args)
    lca = config.get("lca_beta")
    if config["fleet"] > 1:
        from agem.fleet.run import run_fleet

        runs = run_fleet(config)
        for results in runs:
            print(f"seed {results['seed']}: {_metrics_line(results, lca)}")
        print(f"training {runs[0]['train_seconds']:.1f} s for {len(runs)} runs")
        print(f"run folders: {config['out']}/seed<s>")
        return runs[0]
    results = run(config)
    print(format_matrix(results["accuracy_matrix"]))
    print(_metrics_line(results, lca))
    rss = results.get("peak_rss_bytes")
    memory = f", peak memory {rss / 2**20:.0f} MiB" if rss else ""
    print(f"training {results['train_seconds']:.1f} s{memory}")
    print(f"run folder: {config['out']}")
    return results
