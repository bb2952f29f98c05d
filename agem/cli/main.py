"""`agem` command line: `agem run`, `agem compare`, `agem datasets`.

Bad arguments exit with status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 256,256, got {text!r}") from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"expected positive sizes like 256,256, got {text!r}")
    return sizes


def _add_run(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    from agem.benchmarks.registry import BENCHMARKS, DEFAULT_BENCHMARK
    from agem.cli.factory import MODELS, STRATEGIES

    p = sub.add_parser(
        "run",
        help="train and evaluate one strategy on one benchmark",
        description="Train and evaluate one strategy on one benchmark; write a run folder.",
    )
    p.add_argument(
        "--benchmark",
        default=DEFAULT_BENCHMARK,
        choices=sorted(BENCHMARKS),
        help=f"benchmark to run (default {DEFAULT_BENCHMARK}, offline)",
    )
    p.add_argument(
        "--n-experiences",
        type=_positive_int,
        default=None,
        help="number of experiences (default: the benchmark's)",
    )
    p.add_argument(
        "--data-dir", default=None, help="dataset folder (default $AGEM_DATA, else ~/.cache/agem)"
    )
    p.add_argument("--no-download", action="store_true", help="never download datasets")
    p.add_argument(
        "--train-subset",
        type=_positive_int,
        default=None,
        help="permuted/rotated benchmarks: training samples kept per experience "
        "(the A-GEM paper's MNIST protocol uses 10000; default all)",
    )
    p.add_argument(
        "--task-labels",
        action="store_true",
        help="split benchmarks: one task label and head per experience",
    )
    p.add_argument(
        "--strategy",
        default="agem",
        choices=STRATEGIES,
        help="continual-learning method (default agem)",
    )
    p.add_argument("--model", default="mlp", choices=MODELS)
    p.add_argument(
        "--hidden-sizes",
        type=_sizes,
        default=(256, 256),
        help="MLP hidden layer sizes, comma-separated (default 256,256)",
    )
    p.add_argument("--epochs", type=_positive_int, default=1)
    p.add_argument("--lr", type=_positive_float, default=0.1)
    p.add_argument("--batch-size", type=_positive_int, default=10)
    p.add_argument("--eval-batch-size", type=_positive_int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch CPU threads (default: torch's choice)",
    )
    p.add_argument(
        "--out", default=None, help="run folder (default runs/<benchmark>-<strategy>-seed<seed>)"
    )
    p.add_argument(
        "--fleet",
        type=_positive_int,
        default=1,
        help="train K runs (seeds seed..seed+K-1) in lockstep in one process, "
        "into OUT/seed<s> (naive, agem, replay with the mlp; default 1)",
    )
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="capture the training step in a CUDA graph (naive, agem; CUDA devices only)",
    )
    g = p.add_argument_group("evaluation and logging")
    g.add_argument(
        "--lca-beta",
        type=_non_negative_int,
        default=10,
        help="minibatches in the LCA learning curve (default 10)",
    )
    g.add_argument("--no-lca", action="store_true", help="do not record LCA curves")
    g.add_argument(
        "--lca-test-size",
        type=_non_negative_int,
        default=500,
        help="test samples per LCA evaluation (default 500; 0: the whole test set)",
    )
    g.add_argument(
        "--log-every",
        type=_positive_int,
        default=10,
        help="training-loss points in metrics.csv / TensorBoard every N iterations (default 10)",
    )
    g = p.add_argument_group("agem / gem")
    g.add_argument(
        "--patterns-per-experience",
        type=_positive_int,
        default=250,
        help="episodic memory patterns stored per experience (default 250)",
    )
    g.add_argument(
        "--sample-size",
        type=_positive_int,
        default=256,
        help="A-GEM: memory patterns per reference gradient (default 256)",
    )
    g.add_argument(
        "--sampling",
        choices=("uniform", "balanced"),
        default="uniform",
        help="A-GEM: memory sampling (default uniform, the paper's)",
    )
    g.add_argument(
        "--memory-strength",
        type=_non_negative_float,
        default=0.5,
        help="GEM: margin added to the projection (default 0.5)",
    )
    g = p.add_argument_group("replay")
    g.add_argument(
        "--mem-size", type=_positive_int, default=1000, help="replay buffer size (default 1000)"
    )
    g = p.add_argument_group("ewc")
    g.add_argument(
        "--ewc-lambda",
        type=_non_negative_float,
        default=10.0,
        help="EWC penalty weight (default 10; with SGD lr 0.1, 100 diverges)",
    )
    g.add_argument("--ewc-mode", choices=("separate", "online"), default="separate")
    g.add_argument(
        "--decay-factor",
        type=_non_negative_float,
        default=1.0,
        help="EWC online mode: Fisher decay (default 1.0)",
    )
    p.set_defaults(command="run")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="agem", description="Continual learning with A-GEM.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    _add_run(sub)
    from agem.cli.datasets import add_parser as _add_datasets

    _add_datasets(sub)
    from agem.cli.compare import add_parser as _add_compare

    _add_compare(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        if args.command == "run":
            from agem.cli.run import run_from_args

            run_from_args(args)
        if args.command == "compare":
            from agem.cli.compare import compare_from_args

            return compare_from_args(args)
        if args.command == "datasets":
            from agem.cli.datasets import datasets_from_args

            return datasets_from_args(args)
        return 0
    except UsageError as err:
        print(str(err), file=sys.stderr)
        return 2
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"agem: error: {err}", file=sys.stderr)
        return 2


def entry() -> NoReturn:
    """Console-script entry point."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # output piped into e.g. `head`, which exited early
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    sys.exit(code)
