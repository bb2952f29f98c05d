"""`agem run`: parse the flags into a `RunConfig` and hand it to `agem.runs.execute.run`.

The flags themselves (one per `RunConfig` field) are `agem.runs.options`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from agem.cli.applicability import ignored_options
from agem.importpath import short_name
from agem.runs.config import RunConfig, flag
from agem.runs.options import add_run_arguments, config_from_args

__all__ = ["add_parser", "config_from_args", "run_command", "run_from_args"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    """Add `agem run` and its options (`agem.runs.options`)."""
    p = sub.add_parser(
        "run",
        help="train and evaluate one strategy on one benchmark",
        description="Train and evaluate one strategy on one benchmark; write a run folder. "
        "Exit status: 0 complete, 2 usage or environment error, 3 diverged, "
        "130/143 interrupted (resume with --resume DIR).",
    )
    add_run_arguments(p)
    p.set_defaults(command="run")


def format_matrix(matrix: list[list[float]]) -> str:
    """The accuracy matrix as text: one row per trained experience."""
    if not matrix:
        return "(empty accuracy matrix)"
    head = "after \\ on " + " ".join(f"{j:>6d}" for j in range(len(matrix[0])))
    rows = [f"{i:>11d} " + " ".join(f"{v:6.3f}" for v in row) for i, row in enumerate(matrix)]
    return "\n".join([head, *rows])


def _metrics_line(results: dict[str, Any]) -> str:
    beta = results.get("lca_beta")
    keys = ("A_T", "F_T", "BWT", "FWT", *([f"LCA_{beta}"] if beta is not None else []))
    line = "  ".join(f"{k}={results[k]:.4f}" for k in keys if results.get(k) is not None)
    if results.get("A_T_task_il") is not None:  # split benchmarks: the same run, task given
        line += f"  (task-incremental: A_T_task_il={results['A_T_task_il']:.4f})"
    return line


def print_results(results: dict[str, Any], out: Path, *, members: list[str] | None = None) -> None:
    """The accuracy matrix, the metrics, the time and the run folder, on stdout (for a
    fleet: one line of metrics per run)."""
    if "runs" in results:
        runs = results["runs"]
        for run in runs:
            print(f"seed {run['seed']}: {_metrics_line(run)}")
        print(f"training {runs[0]['train_seconds']:.1f} s for {len(runs)} runs")
        print(f"run folders: {', '.join(members) if members else f'{out}/seed<s>'}")
        return
    print(format_matrix(results["accuracy_matrix"]))
    print(_metrics_line(results))
    rss = results.get("peak_rss_bytes")
    memory = f", peak memory {rss / 2**20:.0f} MiB" if rss else ""
    print(f"training {results['train_seconds']:.1f} s{memory}")
    print(f"run folder: {out}")


def run_from_args(args: argparse.Namespace) -> int:
    """Run (or resume) as the flags say; print the results; return the exit status."""
    from agem.runs.execute import run  # torch and the rest only when a run starts

    if args.resume is not None:
        given = [flag(n) for n in RunConfig.field_names() if hasattr(args, n) and n != "threads"]
        extra = [*given, *(["--config"] if args.config else []), *(["--out"] if args.out else [])]
        extra += ["--fleet-folders"] if args.fleet_folders else []
        if extra or args.overwrite:
            others = ", ".join(extra + (["--overwrite"] if args.overwrite else []))
            raise ValueError(
                f"--resume continues with the folder's own config.json; "
                f"only --threads may be given beside it (got {others})"
            )
        out = Path(args.resume)
        if not out.is_dir():
            raise ValueError(f"--resume {out}: no such run folder")
        if not (out / "config.json").is_file() and _is_fleet_folder(out):
            raise ValueError(
                f"{out} holds a fleet's run folders; resume each run with "
                f"agem run --resume {out}/seed<s>"
            )
        if not (out / "config.json").is_file():
            raise ValueError(
                f"{out} is not a run folder (it has no config.json): nothing to resume"
            )
        saved = RunConfig.from_file(out / "config.json")
        config = dataclasses.replace(saved, threads=getattr(args, "threads", saved.threads))
        results = run(config, out, resume=True)
    else:
        config = config_from_args(args)
        given = [n for n in RunConfig.field_names() if hasattr(args, n)]
        fleet = f"-fleet{config.fleet}" if config.fleet > 1 else ""
        benchmark, strategy = short_name(config.benchmark), short_name(config.strategy)
        default = f"runs/{benchmark}-{strategy}{fleet}-seed{config.seed}"
        out = Path(args.out or default)
        if args.fleet_folders and args.out:
            raise ValueError("--fleet-folders names the run folders: give it without --out")
        results = run(config, out, overwrite=args.overwrite, members=args.fleet_folders)
        # after the run: an error stays one line, and the warning is not lost in progress
        for message in ignored_options(config, given):
            print(f"agem: warning: {message}", file=sys.stderr)
    print_results(results, out, members=getattr(args, "fleet_folders", None))
    return 0


def _is_fleet_folder(path: Path) -> bool:
    """Whether `path` holds the run folders `seed<s>` of a fleet."""
    return any((p / "config.json").is_file() for p in path.glob("seed*"))


def _writes_checkpoints(path: Path) -> bool:
    """Whether the run in `path` writes checkpoints (its config.json says)."""
    from agem.bounded import load_json

    try:
        saved = load_json(path / "config.json")
    except (OSError, ValueError):
        return True
    return not (isinstance(saved, dict) and saved.get("checkpoint") is False)


def run_command(args: argparse.Namespace) -> int:
    """`run_from_args`, with a run that stops early reported in one line and its exit
    status: 3 when training diverged, 130/143 when SIGINT/SIGTERM interrupted it."""
    from agem.runs.lifecycle import RunInterrupted, TrainingDiverged

    try:
        return run_from_args(args)
    except TrainingDiverged as err:
        print(f"agem: {err} (status diverged)", file=sys.stderr)
        return 3
    except RunInterrupted as err:
        if err.out is None:
            hint = " before training"
        elif getattr(args, "fleet_folders", None):
            hint = (
                f"; continue each run with: agem run --resume DIR ({', '.join(args.fleet_folders)})"
            )
        elif _is_fleet_folder(err.out) and not (err.out / "config.json").is_file():
            hint = f"; continue each run with: agem run --resume {err.out}/seed<s>"
        elif not _writes_checkpoints(err.out):
            hint = (
                f"; it writes no checkpoint (--no-checkpoint), so "
                f"agem run --resume {err.out} would start it over"
            )
        else:
            hint = f"; continue with: agem run --resume {err.out}"
        print(f"agem: {err}{hint}", file=sys.stderr)
        return err.exit_status
