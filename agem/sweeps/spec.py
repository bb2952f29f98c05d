"""Sweep specifications: a TOML file -> the list of `agem run` invocations it stands for.

A spec has a `[base]` table (any `agem run` option, long name with '_' for '-') and a
`[grid]` table of lists whose cartesian product is run; `[[grid]]` (an array of tables)
runs the union of several such products, for options that only make sense together.
Every run is checked with the real `agem run` parser and `RunConfig` before anything
runs, so that the sweep knows no option names of its own: an unknown option, a wrong
type or an empty grid is a `SpecError` with one line. Each run's device must exist on
this machine and its sizes must fit in memory, as `agem run` checks before it writes.
A spec of more than `MAX_RUNS` runs is refused (counted before any is built) unless
`max_runs` raises the limit.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from agem.runs.bounds import check_sizes
from agem.runs.config import RunConfig
from agem.runs.environment import check_device
from agem.runs.options import RunOption, UsageError, parse_run_argv, run_options
from agem.sweeps.summary import value_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Options a sweep decides itself: where each run goes, and how it is resumed.
RESERVED = frozenset({"out", "resume", "overwrite", "config", "fleet_folders"})
SEED = "seed"
#: The most runs a spec may have unless `--max-runs` raises it.
MAX_RUNS = 10_000
_PROGRESS_SECONDS = 1.0


class SpecError(ValueError):
    """A sweep spec that cannot be run, described in one line."""


@dataclass(frozen=True)
class Job:
    """One grid point: its folder name, its grid values, its `agem run` options (what an
    engine runs) and the `RunConfig` they stand for (checked when the spec is built)."""

    name: str
    values: Mapping[str, Any]
    options: tuple[str, ...]
    varying: tuple[str, ...] = ()
    config: RunConfig | None = field(default=None, compare=False)

    @property
    def configuration(self) -> dict[str, Any]:
        """The grid values that tell its configuration apart (those that vary across the
        sweep, except the seed)."""
        return {k: v for k, v in self.values.items() if k != SEED and k in self.varying}


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: the base options and one or more grids of lists."""

    base: Mapping[str, Any]
    grids: tuple[Mapping[str, Sequence[Any]], ...]
    jobs: tuple[Job, ...] = field(default=())

    def canonical(self) -> str:
        """A stable text form: two specs that run the same jobs have the same form."""
        data = {"base": dict(self.base), "grid": [dict(g) for g in self.grids]}
        return json.dumps(data, sort_keys=True)

    def to_toml(self) -> str:
        """The spec as TOML text that `load_spec` reads back to an equal spec."""
        lines = ["[base]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in self.base.items()]
        for grid in self.grids:
            lines += ["", "[[grid]]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in grid.items()]
        return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):  # an inline table
        pairs = (f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    raise SpecError(f"cannot write a {type(value).__name__} value in a sweep spec")


def _argv_for(key: str, value: Any, options: Mapping[str, RunOption], where: str) -> list[str]:
    """The `agem run` arguments for one `key = value` (booleans are flags)."""
    if key in RESERVED:
        raise SpecError(f"{where}: option {key!r} is set by the sweep itself")
    if key == "fleet":  # the sweep forms fleets itself: `agem sweep --fleet K`
        raise SpecError(
            f"{where}: option 'fleet' is not available in a sweep (each sweep run writes "
            f"one run folder); list the seeds and give `agem sweep --fleet K` instead"
        )
    option = options.get(key)
    negated = options.get(f"no_{key}")
    if option is None and negated is not None and not isinstance(value, bool):
        raise SpecError(
            f"{where}: option {key!r} is true or false (false gives {negated.flag}), got {value!r}"
        )
    if isinstance(value, bool):
        if option is not None and not option.takes_value:
            return [option.flag] if value else []
        if option is None and negated is not None and not negated.takes_value:
            return [] if value else [negated.flag]
        if option is None:
            raise SpecError(f"{where}: unknown option {key!r} (not an `agem run` option)")
        raise SpecError(f"{where}: option {key!r} takes a value, not true/false")
    if option is None:
        raise SpecError(f"{where}: unknown option {key!r} (not an `agem run` option)")
    if not option.takes_value:
        raise SpecError(f"{where}: option {key!r} is a flag: give true or false")
    if option.repeated:  # one flag per value: plugin = ["pkg.mod:A", "pkg.mod:B"]
        values = value if isinstance(value, (list, tuple)) else [value]
        if not all(isinstance(v, str) for v in values):
            raise SpecError(f"{where}: option {key!r} needs a string or a list of strings")
        return [part for v in values for part in (option.flag, v)]
    if isinstance(value, Mapping):  # a JSON object: model_args = {hidden = 512}
        return [option.flag, json.dumps(dict(value), sort_keys=True)]
    if isinstance(value, (list, tuple)):
        if not value or not all(isinstance(v, (int, float, str)) for v in value):
            raise SpecError(f"{where}: option {key!r} needs a non-empty list of plain values")
        return [option.flag, ",".join(str(v) for v in value)]
    if isinstance(value, (int, float, str)):
        return [option.flag, str(value)]
    raise SpecError(f"{where}: option {key!r} has an unusable {type(value).__name__} value")


@functools.cache
def _check_device(name: str) -> None:
    check_device(name)


def _check_argv(argv: list[str], name: str) -> RunConfig:
    """The `RunConfig` of `agem run <argv>` (its options and every value checked), with
    its device and sizes checked as `agem run` does before it writes anything; the
    complaint becomes a SpecError naming the run."""
    label = "the run" if name == "run" else f"run {name}"
    try:
        config = parse_run_argv(argv)
        _check_device(config.device)
        check_sizes(config)
        return config
    except UsageError as err:
        message = str(err).removeprefix("agem run: ")
        raise SpecError(f"{label}: {message}") from None
    except ValueError as err:
        raise SpecError(f"{label}: {err}") from None


_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")


def _name(values: Mapping[str, Any], varying: Sequence[str]) -> str:
    """A folder name from the grid values that vary, e.g. `strategy-agem_lr-0.03_seed-1`."""
    parts = []
    for key, value in values.items():
        if key not in varying:
            continue
        parts.append(f"{key}-{_UNSAFE.sub('.', value_text(value))}")
    return "_".join(parts) or "run"


def _varying(points: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The grid keys that tell the points apart, in first-seen order.

    Keys with two or more values among the points that set them, if those alone give
    every point a distinct name; else also the keys that only some points set.
    """
    keys: list[str] = []
    for values in points:
        keys += [k for k in values if k not in keys]

    def distinct(key: str, *, absent_counts: bool) -> int:
        seen = {
            json.dumps(v[key], default=repr) if key in v else "<absent>"
            for v in points
            if absent_counts or key in v
        }
        return len(seen)

    short = tuple(k for k in keys if distinct(k, absent_counts=False) > 1)
    names = {_name(v, short) for v in points}
    if len(names) == len(points):
        return short
    return tuple(k for k in keys if distinct(k, absent_counts=True) > 1)


def _grids(raw: Any) -> list[Mapping[str, Any]]:
    if isinstance(raw, Mapping):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(g, Mapping) for g in raw):
        return list(raw)
    raise SpecError("[grid] must be a table of lists (or [[grid]] tables)")


def _count(grids: Sequence[Mapping[str, Any]], max_runs: int) -> int:
    """The number of runs the grids stand for, refused above `max_runs` (before any
    run is built)."""
    total = sum(math.prod(len(v) if isinstance(v, list) else 1 for v in g.values()) for g in grids)
    if total > max_runs:
        raise SpecError(
            f"the spec has {total} runs, more than the limit of {max_runs}; "
            f"give --max-runs {total} to run them all"
        )
    return total


def build_spec(
    data: Mapping[str, Any], *, max_runs: int = MAX_RUNS, progress: TextIO | None = None
) -> SweepSpec:
    """Validate a parsed spec (the TOML as a dict) and expand it into jobs.

    More than `max_runs` runs is a SpecError; `progress` gets a line about every second
    while a large spec is validated."""
    unknown = set(data) - {"base", "grid"}
    if unknown:
        raise SpecError(f"unknown section(s) {sorted(unknown)}: a spec has [base] and [grid]")
    base = data.get("base", {})
    if not isinstance(base, Mapping):
        raise SpecError("[base] must be a table of `agem run` options")
    if "grid" not in data:
        raise SpecError("the spec has no [grid]: nothing to sweep")
    grids = _grids(data["grid"])
    options = run_options()
    total = _count(grids, max_runs)
    base_argv: list[str] = []
    for key, value in base.items():
        base_argv += _argv_for(key, value, options, "[base]")
    points: list[tuple[dict[str, Any], list[str]]] = []
    for number, grid in enumerate(grids):
        where = "[grid]" if len(grids) == 1 else f"[[grid]] #{number + 1}"
        if not grid:
            raise SpecError(f"{where} is empty: nothing to sweep")
        for key, values in grid.items():
            if not isinstance(values, list):
                raise SpecError(f"{where}: {key} must be a list of values, got {values!r}")
            if not values:
                raise SpecError(f"{where}: {key} is an empty list: nothing to sweep")
        keys = list(grid)
        for combo in itertools.product(*(grid[k] for k in keys)):
            values = dict(zip(keys, combo, strict=True))
            argv = list(base_argv)
            for key, value in values.items():
                argv += _argv_for(key, value, options, where)
            points.append((values, argv))
    varying = _varying([values for values, _ in points])
    jobs = [Job(_name(v, varying), v, tuple(argv), varying) for v, argv in points]
    seen: dict[str, Job] = {}
    for job in jobs:
        if job.name in seen:
            raise SpecError(f"two grid points give the same run {job.name!r}")
        seen[job.name] = job
    shown = time.monotonic()
    checked = []
    for number, job in enumerate(jobs, start=1):
        checked.append(replace(job, config=_check_argv(list(job.options), job.name)))
        if progress is not None and time.monotonic() - shown > _PROGRESS_SECONDS:
            print(f"validating the spec: {number} of {total} runs checked", file=progress)
            shown = time.monotonic()
    jobs = checked
    return SweepSpec(dict(base), tuple(dict(g) for g in grids), tuple(jobs))


def load_spec(
    path: str | Path, *, max_runs: int = MAX_RUNS, progress: TextIO | None = None
) -> SweepSpec:
    """Read and validate a TOML spec file (SpecError with one line if it is unusable:
    also a file that is not regular or is too large to be a spec)."""
    from agem.bounded import describe, read_text

    path = Path(path)
    try:
        text = read_text(path)
    except (OSError, ValueError) as err:
        raise SpecError(f"cannot read the sweep spec {path}: {describe(err)}") from None
    return parse_spec(text, source=str(path), max_runs=max_runs, progress=progress)


def parse_spec(
    text: str, *, source: str = "spec", max_runs: int = MAX_RUNS, progress: TextIO | None = None
) -> SweepSpec:
    """Validate TOML text as a sweep spec."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{source}: not valid TOML ({err})") from None
    except RecursionError:
        raise SpecError(f"{source}: not usable TOML (nested too deeply)") from None
    return build_spec(data, max_runs=max_runs, progress=progress)
