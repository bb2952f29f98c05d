"""`agem` command line: `agem run`, `agem sweep`, `agem compare`, `agem datasets`.

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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="agem", description="Continual learning with A-GEM.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    from agem.cli.run import add_parser as _add_run

    _add_run(sub)
    from agem.cli.sweep import add_parser as _add_sweep

    _add_sweep(sub)
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
    except (ValueError, TypeError, OSError) as err:
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
    except BrokenPipeError:  # output piped into e.g. `head`, which exited early
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    sys.exit(code)
