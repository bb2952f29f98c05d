"""The options of `agem run`: one flag per `RunConfig` field, plus the run-folder options.

Both the command line (`agem run`) and sweeps (a spec's keys are these options) read
them from here. The field flags have no argparse defaults (`argparse.SUPPRESS`): only the
flags actually given override the base config, which is `RunConfig()` or the file named
by `--config`. The defaults shown in `--help` are read from `RunConfig`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from agem.benchmarks.registry import BENCHMARKS
from agem.runs.config import (
    EWC_MODES,
    MODELS,
    OPTIMIZERS,
    SAMPLINGS,
    STRATEGIES,
    RunConfig,
    flag,
)


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit status 2."""


class OptionParser(argparse.ArgumentParser):
    """An argument parser whose errors are `UsageError`s (one line), not exits."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


# field -> (group, help); the order is that of `agem run --help`
_HELP: dict[str, tuple[str, str]] = {
    "benchmark": ("run", "benchmark to run"),
    "n_experiences": ("run", "number of experiences (default: the benchmark's)"),
    "train_subset": (
        "run",
        "permuted/rotated benchmarks: training samples kept per experience "
        "(the A-GEM paper's MNIST protocol uses 10000; default: all of them)",
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
    "strategy": ("run", "continual-learning method"),
    "model": ("run", "network"),
    "hidden_sizes": ("run", "MLP hidden layer sizes, comma-separated"),
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
    "memory_strength": ("agem / gem", "GEM: margin added to the projection"),
    "mem_size": ("replay", "replay buffer size"),
    "ewc_lambda": ("ewc", "EWC penalty weight (with SGD lr 0.1, 100 diverges)"),
    "ewc_mode": ("ewc", "EWC mode"),
    "decay_factor": ("ewc", "EWC online mode: Fisher decay"),
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "strategy": STRATEGIES,
    "model": MODELS,
    "optimizer": OPTIMIZERS,
    "sampling": SAMPLINGS,
    "ewc_mode": EWC_MODES,
}
_SWITCHES = {"download": False, "checkpoint": False, "task_labels": True, "cuda_graph": True}


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


@dataclass(frozen=True)
class RunOption:
    """One `agem run` option: its flag, and whether it takes a value (else a switch)."""

    flag: str
    takes_value: bool


#: the run-folder options (not settings of the run itself)
FOLDER_OPTIONS: dict[str, RunOption] = {
    "out": RunOption("--out", True),
    "overwrite": RunOption("--overwrite", False),
    "resume": RunOption("--resume", True),
    "fleet_folders": RunOption("--fleet-folders", True),
    "config": RunOption("--config", True),
}


def run_options() -> dict[str, RunOption]:
    """Every `agem run` option by key (`foo_bar` for `--foo-bar`)."""
    options = dict(FOLDER_OPTIONS)
    for name in _HELP:
        option = RunOption(flag(name), name not in _SWITCHES)
        options[option.flag[2:].replace("-", "_")] = option
        if name == "lca_beta":
            options["no_lca"] = RunOption("--no-lca", False)
    return options


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Add the run-folder options and one flag per `RunConfig` field to `p`."""
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


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The `RunConfig` the flags describe: the base (`--config` FILE or the defaults) with
    every flag given on the command line applied on top, then resolved."""
    base = RunConfig.from_file(args.config) if args.config else RunConfig()
    given = {name: getattr(args, name) for name in RunConfig.field_names() if hasattr(args, name)}
    if given.get("data_dir"):  # absolute, so that --resume and --config work from anywhere
        given["data_dir"] = str(Path(given["data_dir"]).expanduser().absolute())
    return dataclasses.replace(base, **given).resolved()


def parse_run_argv(argv: Sequence[str]) -> RunConfig:
    """The `RunConfig` that `agem run <argv>` would run (`UsageError` or `ValueError`
    with one line when the options are not usable)."""
    parser = OptionParser(prog="agem run")
    add_run_arguments(parser)
    return config_from_args(parser.parse_args(list(argv)))
