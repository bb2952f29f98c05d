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

from agem.importpath import parse_object
from agem.runs.config import GROUPS, RunConfig, Setting, flag, settings


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit status 2."""


class OptionParser(argparse.ArgumentParser):
    """An argument parser whose errors are `UsageError`s (one line), not exits."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


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


def _object(text: str) -> dict[str, Any]:
    try:
        return parse_object(text, option="the value")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


_TYPES: dict[str, Any] = {"int": _integer, "float": _number, "sizes": _sizes, "object": _object}


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)


@dataclass(frozen=True)
class RunOption:
    """One `agem run` option: its flag, whether it takes a value (else a switch), and
    whether it is repeated for each of its values (`--plugin A --plugin B`)."""

    flag: str
    takes_value: bool
    repeated: bool = False


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
    for name, described in settings().items():
        option = RunOption(flag(name), described.switch is None, described.kind == "plugins")
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
    described = settings()
    for group_name in GROUPS:
        group = p.add_argument_group(group_name)
        for name, setting in described.items():
            if setting.group == group_name:
                _add_flag(group, name, setting, getattr(defaults, name))


def _add_flag(group: argparse._ArgumentGroup, name: str, setting: Setting, default: Any) -> None:
    """The flag of one `RunConfig` field, as its `Setting` describes it."""
    kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS}
    text = setting.help
    if setting.switch is not None:
        kwargs.update(action="store_const", const=setting.switch, help=text)
    else:
        kwargs["help"] = text if "default:" in text else f"{text} (default: {_show(default)})"
        if setting.allowed() and not setting.own:
            kwargs["choices"] = setting.allowed()
        else:
            kwargs["type"] = _TYPES.get(setting.kind, str)
        if setting.kind == "plugins":
            kwargs.update(action="append", metavar="package.module:Class[:JSON]")
        elif setting.kind == "object":
            kwargs["metavar"] = "JSON"
        elif setting.own:
            kwargs["metavar"] = "{" + ",".join(setting.allowed()) + "} or package.module:Name"
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
