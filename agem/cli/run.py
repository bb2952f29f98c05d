"""`agem run`: parse the flags into a `RunConfig` and hand it to `agem.runs.execute.run`.

Every run setting is one flag, named after its `RunConfig` field. The flags have no
argparse defaults (`argparse.SUPPRESS`): only the flags actually given override the base
config, which is `RunConfig()` or the file named by `--config`. The defaults shown in
`--help` are read from `RunConfig`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

from agem.cli.applicability import ignored_options
from agem.runs.config import (
    EWC_MODES,
    FILLINGS,
    GEM_SOLVERS,
    INITS,
    MODELS,
    OPTIMIZERS,
    SAMPLINGS,
    STRATEGIES,
    RunConfig,
    flag,
)

# field -> (group, help); the order is that of `agem run --help`
_HELP: dict[str, tuple[str, str]] = {
    "benchmark": ("run", "benchmark to run"),
    "n_experiences": ("run", "number of experiences (default: the benchmark's)"),
    "train_subset": (
        "run",
        "permuted/rotated benchmarks: training samples kept per experience (the A-GEM "
        "paper, ICLR'19, trains on all of them; its authors' later tiny-memories paper "
        "keeps 1000; default: all of them)",
    ),
    "fresh_subset": (
        "run",
        "permuted benchmarks: draw another --train-subset for each experience, as the A-GEM "
        "authors' 1000-example code did (default: the same samples in every experience)",
    ),
    "experiences": (
        "run",
        "train and evaluate on this range START:STOP of the benchmark's experiences only, "
        "renumbered from 0: 0:3 to choose hyperparameters, 3:20 to report (default: all)",
    ),
    "data_dir": (
        "run",
        "folder holding the dataset files; only this folder is searched "
        "(default: $AGEM_DATA, else ~/.cache/agem, then system folders)",
    ),
    "download": ("run", "never download datasets (default: download when missing)"),
    "task_labels": (
        "run",
        "split benchmarks: one task label and head per experience (default: one head)",
    ),
    "strategy": (
        "run",
        "continual-learning method (pnn: progressive networks, needs --task-labels)",
    ),
    "model": ("run", "network"),
    "hidden_sizes": ("run", "MLP hidden layer sizes, comma-separated"),
    "init": (
        "run",
        "MLP initial weights: default (PyTorch's) or truncated_normal (the A-GEM authors' "
        "code: weights from a normal of std 0.1 cut at 2 std, biases 0.1)",
    ),
    "epochs": ("run", "epochs per experience"),
    "lr": ("run", "learning rate"),
    "optimizer": ("run", "optimizer"),
    "momentum": ("run", "SGD momentum"),
    "weight_decay": ("run", "L2 weight decay (AdamW: decoupled)"),
    "batch_size": ("run", "training minibatch size"),
    "eval_batch_size": ("run", "evaluation minibatch size"),
    "seed": ("run", "random seed (0 to 2**32-1)"),
    "device": ("run", "torch device, e.g. cpu, cuda, cuda:1"),
    "threads": (
        "run",
        "torch CPU threads (default: 1 for a model without convolutions and with at most "
        "5M parameters on the CPU, else torch's choice)",
    ),
    "checkpoint": (
        "run",
        "do not write a checkpoint after each experience, so the run cannot be resumed "
        "(default: a checkpoint after each experience)",
    ),
    "fleet": (
        "run",
        "train K runs (seeds seed..seed+K-1) in lockstep in one process, into OUT/seed<s> "
        "(naive, agem, replay with the mlp)",
    ),
    "cuda_graph": (
        "run",
        "capture the training step in a CUDA graph (naive, agem; CUDA devices only; "
        "default: eager steps)",
    ),
    "lca_beta": ("evaluation and logging", "minibatches in the LCA learning curve"),
    "lca_test_size": (
        "evaluation and logging",
        "test samples per LCA evaluation (0: the whole test set)",
    ),
    "log_every": (
        "evaluation and logging",
        "training-loss points in metrics.csv / TensorBoard every N iterations",
    ),
    "logger": (
        "evaluation and logging",
        "loggers, comma-separated: csv (metrics.csv), tensorboard (events and "
        "hyperparameters), wandb (Weights & Biases; needs agem[wandb], WANDB_MODE=offline "
        "writes locally)",
    ),
    "patterns_per_experience": ("agem / gem", "episodic memory patterns stored per experience"),
    "sample_size": ("agem / gem", "A-GEM: memory patterns per reference gradient"),
    "sampling": ("agem / gem", "A-GEM: memory sampling (uniform is the paper's)"),
    "memory_filling": (
        "agem / gem",
        "which patterns of an experience are stored: random (uniform), class_balanced "
        "(an equal number per class, as the A-GEM authors' code stores 25 per class) or, "
        "A-GEM only, ring_buffer (each class's last examples seen while training, as their "
        "later code does)",
    ),
    "memory_strength": ("agem / gem", "GEM: margin added to the projection"),
    "gem_solver": (
        "agem / gem",
        "GEM: quadratic-program solver: quadprog (host, exact), device (no host "
        "synchronisation), auto (quadprog on the CPU with under 5 past experiences, "
        "else device)",
    ),
    "mem_size": ("replay", "replay buffer size"),
    "ewc_lambda": ("ewc", "EWC penalty weight (with SGD lr 0.1, 100 diverges)"),
    "ewc_mode": (
        "ewc",
        "EWC mode: separate (one Fisher per experience), online (one decayed Fisher), "
        "running (the A-GEM paper's: one running Fisher, normalised, anchored at the last "
        "experience's weights)",
    ),
    "decay_factor": ("ewc", "EWC online mode: Fisher decay"),
    "si_lambda": (
        "si / mas / rwalk",
        "SI (path integral) penalty weight (its importance grows with every experience: "
        "with plain SGD, lr * lambda too large diverges; see docs/METHODS.md)",
    ),
    "si_xi": ("si / mas / rwalk", "SI damping xi of the importance's denominator"),
    "mas_lambda": ("si / mas / rwalk", "MAS penalty weight"),
    "rwalk_lambda": ("si / mas / rwalk", "RWalk penalty weight"),
    "rwalk_alpha": ("si / mas / rwalk", "RWalk: weight of the newest Fisher in its moving average"),
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "strategy": STRATEGIES,
    "model": MODELS,
    "optimizer": OPTIMIZERS,
    "sampling": SAMPLINGS,
    "ewc_mode": EWC_MODES,
    "gem_solver": GEM_SOLVERS,
    "memory_filling": FILLINGS,
    "init": INITS,
}
_SWITCHES = {
    "download": False,
    "checkpoint": False,
    "task_labels": True,
    "cuda_graph": True,
    "fresh_subset": True,
}


def _integer(text: str) -> int:
    """An integer; also written like 1e6 when that is a whole number."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not math.isfinite(value) or not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(value)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(_integer(s) for s in text.split(",") if s.strip())
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected sizes like 256,256, got {text!r}") from None


_TYPES: dict[str, Any] = {"int": _integer, "float": _number}


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    """Add `agem run` and one flag per `RunConfig` field."""
    from agem.benchmarks.registry import BENCHMARKS

    p = sub.add_parser(
        "run",
        help="train and evaluate one strategy on one benchmark",
        description="Train and evaluate one strategy on one benchmark; write a run folder. "
        "Exit status: 0 complete, 2 usage or environment error, 3 diverged, "
        "130/143 interrupted (resume with --resume DIR).",
    )
    folder = p.add_argument_group("run folder")
    folder.add_argument(
        "--out",
        default=None,
        help="run folder (default: runs/<benchmark>-<strategy>-seed<seed>); must be new or empty",
    )
    folder.add_argument(
        "--overwrite",
        action="store_true",
        help="clear a non-empty --out folder first (default: refuse it)",
    )
    folder.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help="continue the run in DIR from its last checkpoint, with DIR's config.json "
        "(only --threads may be given beside it; default: a new run)",
    )
    folder.add_argument(
        "--fleet-folders",
        nargs="+",
        metavar="DIR",
        default=None,
        help="with --fleet K: the K run folders, one per seed in order, instead of "
        "OUT/seed<s> (each must be new or empty; default: OUT/seed<s>)",
    )
    folder.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="start from the settings in FILE (a run folder's config.json); "
        "flags given beside it override them (default: the defaults shown here)",
    )
    defaults = RunConfig()
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    groups: dict[str, argparse._ArgumentGroup] = {}
    for name, (group_name, text) in _HELP.items():
        group = groups.get(group_name)
        if group is None:
            group = groups[group_name] = p.add_argument_group(group_name)
        default = getattr(defaults, name)
        kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS}
        if name in _SWITCHES:
            kwargs.update(action="store_const", const=_SWITCHES[name], help=text)
        else:
            kwargs["help"] = text if "default:" in text else f"{text} (default: {_show(default)})"
            if name == "hidden_sizes":
                kwargs["type"] = _sizes
            elif name == "benchmark":
                kwargs["choices"] = sorted(BENCHMARKS)
            elif name in _CHOICES:
                kwargs["choices"] = _CHOICES[name]
            else:
                kind = fields[name].type
                kind = str(kind).split("|")[0].strip()
                kwargs["type"] = _TYPES.get(kind, str)
        group.add_argument(flag(name), **kwargs)
        if name == "lca_beta":
            group.add_argument(
                "--no-lca",
                dest="lca_beta",
                action="store_const",
                const=None,
                default=argparse.SUPPRESS,
                help="do not record LCA curves (default: record them)",
            )
    p.set_defaults(command="run")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The `RunConfig` the flags describe: the base (`--config` FILE or the defaults) with
    every flag given on the command line applied on top, then resolved."""
    base = RunConfig.from_file(args.config) if args.config else RunConfig()
    given = {name: getattr(args, name) for name in RunConfig.field_names() if hasattr(args, name)}
    if given.get("data_dir"):  # absolute, so that --resume and --config work from anywhere
        given["data_dir"] = str(Path(given["data_dir"]).expanduser().absolute())
    return dataclasses.replace(base, **given).resolved()


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
    return "  ".join(f"{k}={results[k]:.4f}" for k in keys if results.get(k) is not None)


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
    from agem.runs.execute import run

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
        default = f"runs/{config.benchmark}-{config.strategy}{fleet}-seed{config.seed}"
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

    from agem.runs.execute import RunInterrupted, TrainingDiverged

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
