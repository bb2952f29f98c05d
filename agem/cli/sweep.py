"""`agem sweep`: many `agem run`s from a grid (a TOML spec) or a preset, then a summary.

The whole spec is checked before anything runs (one line and exit status 2 for an
unknown option, a wrong type, an empty grid, or a DIR holding another sweep). SIGINT or
SIGTERM stops the runs in flight (they record themselves as interrupted) and exits
130/143; re-running the same command continues the sweep.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    """Add the `sweep` subcommand to the `agem` parser."""
    p = sub.add_parser(
        "sweep",
        help="run a grid of runs (locally or on Ray) and summarise them",
        description=(
            "Run every combination of a TOML spec's [grid] over its [base] options, each "
            "as an `agem run` folder in DIR, then write DIR/summary.csv, summary.md and "
            "summary.png (mean ± std over seeds). Re-running the same command skips "
            "complete runs and resumes unfinished ones."
        ),
    )
    p.add_argument("spec", nargs="?", metavar="SWEEP.toml", help="the sweep spec (TOML)")
    p.add_argument("--preset", default=None, help="run a preset protocol instead of a spec")
    p.add_argument("--list-presets", action="store_true", help="list the presets and exit")
    p.add_argument(
        "--published",
        action="store_true",
        help="preset: skip the selection phase and run the reported phase with the "
        "hyperparameters the authors published (default: choose them on the selection "
        "experiences)",
    )
    p.add_argument("--out", default=None, metavar="DIR", help="the sweep folder")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="preset: override an option (TOML value, e.g. n_experiences=5, lr=[0.1], seeds=2)",
    )
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="where the runs execute: local (default: --workers processes on this machine) "
        "or ray (each run a Ray task on the cluster at --ray-address or $RAY_ADDRESS, else "
        "on a local Ray instance; needs agem[ray]); results land in DIR either way",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="runs at a time (local processes, or the CPUs of a local Ray instance)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per run (default: each run's own rule, within its share of the "
        "cores: OMP_NUM_THREADS = cores / workers)",
    )
    p.add_argument(
        "--fleet",
        default="gpu",
        metavar="K|auto",
        help="train up to K runs that differ only in their seed (consecutive seeds) as one "
        "`agem run --fleet` where the strategy and model allow it, each into its own run "
        "folder; auto: all such seeds; 1: every run alone (default: auto for runs on a "
        "CUDA device, every CPU run alone)",
    )
    p.add_argument(
        "--processes",
        choices=("warm", "cold"),
        default="warm",
        help="warm: each run a fork of a worker that has imported torch and agem already "
        "(default; on Ray, each worker a Ray actor holding one); cold: each run a new "
        "`python -m agem run` process (slower; for debugging a run's start-up)",
    )
    p.add_argument(
        "--ray-package",
        choices=("ship", "installed"),
        default=None,
        help="ship: send this agem to the cluster's nodes with Ray's runtime environment "
        "(default); installed: the nodes have this agem installed already",
    )
    p.add_argument(
        "--plots",
        action="store_true",
        help="draw each run's own PNG plots too (default: only the sweep's summary.png; "
        "a spec's `plots` option decides for its runs)",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster to join (default $RAY_ADDRESS, else a local Ray instance)",
    )
    p.add_argument(
        "--ray-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up when Ray cannot be reached or started within SECONDS (default: 30)",
    )
    p.add_argument(
        "--max-runs",
        type=int,
        default=None,
        metavar="N",
        help="refuse a spec or preset of more than N runs (default: 10000)",
    )
    p.set_defaults(command="sweep")


class _Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signum)


def _overrides(items: list[str]) -> dict[str, Any]:
    from agem.sweeps.spec import SpecError, tomllib

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value  # a bare word: a string
    return out


def _fleet(value: str) -> int | str:
    """`--fleet`: a positive K, "auto", or the default "gpu" (auto on a CUDA device)."""
    from agem.runs.options import UsageError

    if value in ("auto", "gpu"):
        return value
    if not value.isdigit() or int(value) < 1:
        raise UsageError(f"agem sweep: --fleet must be a positive integer or auto, got {value!r}")
    return int(value)


def sweep_from_args(args: argparse.Namespace) -> int:
    """Validate, run with the chosen engine, print where the summary is."""
    from agem.cli.debug import debug_requested
    from agem.runs.options import UsageError
    from agem.sweeps.engines import RAY_TIMEOUT, Engine, LocalEngine, RayEngine
    from agem.sweeps.presets import PRESETS, get_preset
    from agem.sweeps.runner import SweepResult, describe_incomplete, run_sweep
    from agem.sweeps.spec import MAX_RUNS, SpecError, load_spec
    from agem.sweeps.twophase import run_protocol, run_published

    if args.list_presets:
        for name in PRESETS:
            print(f"{name:<24} {get_preset(name).summary}")
        print("see docs/SWEEPS.md for which paper each preset follows and what it costs")
        return 0
    if (args.spec is None) == (args.preset is None):
        raise UsageError("agem sweep: give either SWEEP.toml or --preset NAME")
    if args.out is None:
        raise UsageError("agem sweep: --out DIR is required")
    if args.workers < 1 or (args.threads is not None and args.threads < 1):
        raise UsageError("agem sweep: --workers and --threads must be positive")
    fleet = _fleet(args.fleet)
    if args.set and args.preset is None:
        raise UsageError("agem sweep: --set applies to presets; edit the spec instead")
    if args.published and args.preset is None:
        raise UsageError("agem sweep: --published applies to presets")
    max_runs = MAX_RUNS if args.max_runs is None else args.max_runs
    if max_runs < 1:
        raise UsageError("agem sweep: --max-runs must be positive")
    ray_timeout = RAY_TIMEOUT if args.ray_timeout is None else args.ray_timeout
    if not 0 < ray_timeout < float("inf"):
        raise UsageError("agem sweep: --ray-timeout must be a positive number of seconds")
    if args.engine != "ray" and (
        args.ray_timeout is not None or args.ray_address or args.ray_package
    ):
        raise UsageError(
            "agem sweep: --ray-address, --ray-timeout and --ray-package need --engine ray"
        )
    out = Path(args.out)
    threads = args.threads
    try:
        protocol = spec = None
        if args.preset is not None:
            overrides = _overrides(args.set)
            protocol = get_preset(args.preset).with_overrides(overrides)
            searched = sorted(set(overrides) & protocol.searched())
            if args.published and searched:
                raise SpecError(f"--published fixes {', '.join(searched)}; do not --set it")
            if args.published:  # validate before anything runs
                protocol.published_spec()
            else:
                protocol.selection_spec()
        else:
            spec = load_spec(args.spec, max_runs=max_runs, progress=sys.stderr)
        engine: Engine
        if args.engine == "ray":
            ray_engine = RayEngine(
                address=args.ray_address,
                workers=args.workers,
                timeout=ray_timeout,
                quiet=not debug_requested(args),
                processes=args.processes,
                ship=args.ray_package != "installed",
            )
            ray_engine.connect()  # before anything is written
            engine = ray_engine
        else:
            engine = LocalEngine(workers=args.workers, processes=args.processes)
    except SpecError as err:
        raise UsageError(f"agem sweep: {err}") from None
    previous = {s: signal.signal(s, _raise_stopped) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        how = {"engine": engine, "parallel": args.workers, "threads": threads, "fleet": fleet}
        how["plots"] = args.plots
        how["stream"] = sys.stdout  # the current one (a default would be bound at import)
        result: SweepResult | None = None
        if protocol is not None and args.published:
            result = run_published(protocol, out, **how)
        elif protocol is not None:
            result = run_protocol(protocol, out, **how)
        elif spec is not None:
            result = run_sweep(spec, out, max_runs=max_runs, **how)
    except SpecError as err:
        raise UsageError(f"agem sweep: {err}") from None
    except (_Stopped, KeyboardInterrupt) as stop:
        signum = stop.signum if isinstance(stop, _Stopped) else signal.SIGINT
        print(f"sweep stopped; re-run the same command to continue it in {out}", file=sys.stderr)
        return 128 + int(signum)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    command = " ".join(sys.argv) if sys.argv and sys.argv[0].endswith("agem") else "agem sweep"
    if result is None:
        print("the selection phase did not complete; re-run the same command", file=sys.stderr)
        return 1
    for line in describe_incomplete(result, command):
        print(line, file=sys.stderr)
    if result.rows:
        from agem.sweeps.summary import to_markdown

        print(to_markdown(result.rows), end="")
    print("summary: " + ", ".join(str(p) for p in result.written))
    return 1 if result.incomplete else 0
