"""`agem` command line: `agem run`, `agem sweep`, `agem compare`, `agem datasets`.

Bad arguments exit with status 2 and one line on stderr, never a traceback; `--debug`
(or the environment variable AGEM_DEBUG=1) shows the traceback of such errors instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from agem.cli.debug import DEBUG_VARIABLE, debug_requested
from agem.exiting import exit_now
from agem.extras import MissingExtraError
from agem.runs.options import OptionParser, UsageError


def versions() -> str:
    """ "agem X (torch Y, Python Z)": what `agem --version` prints."""
    import platform

    import torch

    from agem.version import __version__

    return f"agem {__version__} (torch {torch.__version__}, Python {platform.python_version()})"


class _Version(argparse.Action):
    """`--version`: print the versions and exit (torch is imported only when asked)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(versions())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = OptionParser(prog="agem", description="Continual learning with A-GEM.")
    parser.add_argument(
        "--version", action=_Version, help="print the agem, torch and Python versions and exit"
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the full traceback of errors instead of one line "
        f"(also {DEBUG_VARIABLE}=1; default: one line)",
    )
    sub = parser.add_subparsers(dest="command", parser_class=OptionParser)
    from agem.cli.run import add_parser as _add_run

    _add_run(sub)
    from agem.cli.sweep import add_parser as _add_sweep

    _add_sweep(sub)
    from agem.cli.datasets import add_parser as _add_datasets

    _add_datasets(sub)
    from agem.cli.compare import add_parser as _add_compare

    _add_compare(sub)
    for command in sub.choices.values():  # also accepted after the subcommand
        command.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help=f"show the full traceback of errors (also {DEBUG_VARIABLE}=1; default: off)",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args: argparse.Namespace | None = None
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        if args.command == "run":
            from agem.cli.run import run_command

            return run_command(args)
        if args.command == "sweep":
            from agem.cli.sweep import sweep_from_args

            return sweep_from_args(args)
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
    except (ValueError, TypeError, OSError, MissingExtraError) as err:
        if debug_requested(args):
            raise
        print(f"agem: error: {describe_error(err)}", file=sys.stderr)
        return 2


def describe_error(err: BaseException) -> str:
    """One line for an error: an OS error as "what: path", anything else its message."""
    if isinstance(err, OSError) and err.strerror:
        where = f": {err.filename}" if err.filename else ""
        return f"{err.strerror}{where}"
    return " ".join(str(err).split()) or type(err).__name__


def entry() -> NoReturn:
    """Console-script entry point."""
    try:
        code = main()
        sys.stdout.flush()
    except SystemExit as done:  # `--help`, `--version`, argparse's usage errors
        if not (done.code is None or isinstance(done.code, int)):
            raise
        code = done.code or 0
    except BrokenPipeError:  # output piped into e.g. `head`, which exited early
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    exit_now(code)  # without the interpreter's teardown: it took most of a second
