"""Run a sweep into a folder: plan each grid point, hand the work to an engine, summarise.

The sweep folder DIR holds `sweep.toml` (the spec, so that a re-run with a different
spec is refused), one run folder per grid point, `logs/` (each run's output) and the
summary. Re-running the same sweep is safe at any point: a complete run is skipped, an
unfinished one is resumed from its checkpoint (`agem run --resume`), a missing one is
started, so the summary ends equal to an uninterrupted sweep's.

One sweep at a time: `run_sweep` holds an exclusive lock on `DIR/.lock` while it runs,
and a second sweep on DIR is refused at once with one line naming the holder. A sweep
folder holds only its own files: a symbolic link in it (or in `logs/`) is refused before
anything is written, and no file is ever written through one.

With `fleet` K > 1, runs not yet started that differ only in their seed, with
consecutive seeds, go K at a time into one `agem run --fleet K --fleet-folders ...`
(when their strategy and model can be trained as a fleet), each member still writing
its own folder DIR/<run name>; a member that was interrupted resumes as a single run.
`fleet="auto"` groups all such seeds (up to `MAX_FLEET`); `fleet="gpu"` (the command
line's default) does so for runs on a CUDA device and trains the others alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from agem.atomic import write_text_atomic
from agem.bounded import describe, read_text
from agem.reporting.compare import RunRecord, load_run, run_status
from agem.reporting.plots import DEFAULT_PLOT_FORMAT, plot_formats
from agem.runs.config import MAX_FLEET, RunConfig
from agem.runs.folder import LOCK, RunFolderError, lock_file
from agem.runs.options import parse_run_argv
from agem.sweeps.engines import Engine, Outcome, Task
from agem.sweeps.spec import MAX_RUNS, Job, SpecError, SweepSpec, parse_spec
from agem.sweeps.summary import SummaryRow, summarize, write_summary

SPEC_FILE = "sweep.toml"
LOGS = "logs"
# A run that ended in one of these is not run again (a diverged run would diverge again).
FINAL = ("complete", "diverged")
# `agem run`'s exit status for an error it reports before changing the folder
USAGE_ERROR = 2


@dataclass(frozen=True)
class SweepResult:
    """What a sweep ended with: the summary rows and the runs that are not complete."""

    rows: list[SummaryRow]
    incomplete: dict[str, str]  # run name -> status
    written: list[Path]


def prepare_folder(
    spec: SweepSpec, out: Path, *, also: frozenset[str] = frozenset(), max_runs: int = MAX_RUNS
) -> None:
    """Create DIR with the spec, or check that DIR holds this very sweep, or one that
    `spec` extends (every stored run again, with the same options: the stored spec is
    then replaced and the new runs are added).

    Raises SpecError (one line) for a folder of another sweep, a non-empty folder that
    is not a sweep folder (entries named in `also` may be there already), or a folder
    with a symbolic link in it.
    """
    if check_folder(spec, out, also=also, max_runs=max_runs):
        write_spec(spec, out)


def check_folder(
    spec: SweepSpec, out: Path, *, also: frozenset[str] = frozenset(), max_runs: int = MAX_RUNS
) -> bool:
    """`prepare_folder`'s checks, writing nothing; True when DIR's spec must be written."""
    stored = out / SPEC_FILE
    _refuse_links(out)
    if stored.is_file():
        try:
            text = read_text(stored)
            previous = parse_spec(text, source=str(stored), max_runs=max(max_runs, MAX_RUNS))
        except (OSError, ValueError) as err:
            raise SpecError(
                f"{out} holds a sweep spec that no longer validates: {describe(err)}"
            ) from None
        if previous.canonical() == spec.canonical():
            return False
        if not _grows(previous, spec):
            raise SpecError(
                f"{out} holds a different sweep (see {stored}); use another --out folder"
            )
        return True  # the sweep grows: its runs stay valid
    allowed = also | {LOCK}
    if out.exists() and (not out.is_dir() or any(p.name not in allowed for p in out.iterdir())):
        raise SpecError(f"{out} exists and is not a sweep folder; use another --out folder")
    return True


def write_spec(spec: SweepSpec, out: Path) -> None:
    """Write DIR/sweep.toml (creating DIR)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / SPEC_FILE, spec.to_toml())
    except OSError as err:
        raise SpecError(f"cannot write the sweep folder {out}: {describe(err)}") from None


def _refuse_links(out: Path) -> None:
    """SpecError if DIR or DIR/logs holds a symbolic link (a write would go elsewhere)."""
    for folder in (out, out / LOGS):
        if folder.is_symlink():
            raise SpecError(f"{folder} is a symbolic link; use a real folder")
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.is_symlink():
                raise SpecError(
                    f"{entry} is a symbolic link; a sweep folder holds only its own files "
                    "(remove it)"
                )


def lock_sweep(out: Path) -> int:
    """Create DIR if needed and hold its sweep lock (a descriptor; closing it releases
    the lock); SpecError naming the holder when another sweep runs in DIR."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        return lock_file(out / LOCK, user="a running sweep")
    except RunFolderError as err:
        raise SpecError(str(err)) from None
    except OSError as err:
        raise SpecError(f"cannot lock the sweep folder {out}: {describe(err)}") from None


def _grows(previous: SweepSpec, spec: SweepSpec) -> bool:
    """True when `spec` runs every run of `previous`, each with the very same options (a
    grid extended with new values or strategies): the runs already there stay valid."""
    runs = {job.name: job.options for job in spec.jobs}
    return all(runs.get(job.name) == job.options for job in previous.jobs)


def _status(folder: Path) -> str | None:
    """The run folder's status; None when there is nothing there to resume."""
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    if not (folder / "config.json").is_file():
        return "unusable"
    try:
        return load_run(folder).status
    except ValueError:
        return run_status(None)


def _fleet_capable(config: RunConfig) -> bool:
    """Whether a fleet can train runs like `config` (its validation says)."""
    try:
        replace(config, fleet=2)
    except ValueError:
        return False
    return True


#: `fleet` values besides a size K: group every seed, or only those of runs on a GPU
FLEET_MODES = ("auto", "gpu")


def fleet_limit(config: RunConfig, fleet: int | str) -> int:
    """The most runs like `config` to train as one fleet: K, `MAX_FLEET` for "auto", and
    for "gpu" `MAX_FLEET` where the run is on a CUDA device, else 1 (on the CPU a fleet
    saves little: BENCHMARKS.md)."""
    if fleet == "auto" or (fleet == "gpu" and config.device.startswith("cuda")):
        return MAX_FLEET
    if fleet == "gpu":
        return 1
    if isinstance(fleet, bool) or not isinstance(fleet, int) or fleet < 1:
        raise ValueError(f"fleet must be a positive integer or one of {FLEET_MODES}, got {fleet!r}")
    return min(fleet, MAX_FLEET)


def fleets(jobs: Sequence[Job], size: int | str) -> list[list[Job]]:
    """The jobs in groups to run together: at most `size` jobs (see `fleet_limit`) whose
    configs differ only in their seed, with consecutive seeds, and that a fleet can
    train; others alone."""
    groups: list[list[Job]] = []
    alike: dict[str, list[tuple[int, Job]]] = {}
    limits: dict[str, int] = {}
    for job in jobs:
        config = job.config if job.config is not None else parse_run_argv(job.options)
        limit = fleet_limit(config, size)
        if limit == 1 or not _fleet_capable(config):
            groups.append([job])
            continue
        key = json.dumps({**config.to_dict(), "seed": None}, sort_keys=True, default=str)
        alike.setdefault(key, []).append((config.seed, job))
        limits[key] = limit
    for key, members in alike.items():
        members.sort(key=lambda member: member[0])
        group: list[Job] = []
        last = -2
        for seed, job in members:
            if group and (seed != last + 1 or len(group) == limits[key]):
                groups.append(group)
                group = []
            group.append(job)
            last = seed
        groups.append(group)
    order = {job.name: i for i, job in enumerate(jobs)}
    return sorted(groups, key=lambda g: order[g[0].name])


def _thread_args(job: Job, threads: int | None) -> list[str]:
    """`--threads N` unless the job sets its own (or no number is given)."""
    if threads is None or "--threads" in job.options:
        return []
    return ["--threads", str(threads)]


def _group_args(job: Job, sweep: str) -> list[str]:
    """`--wandb-group SWEEP` for a run that logs to W&B without a group of its own (in
    its options, or $WANDB_RUN_GROUP): the runs of a sweep are one W&B group, and each
    run's W&B name is its folder's, which carries its grid values."""
    config = job.config if job.config is not None else parse_run_argv(job.options)
    if (
        "wandb" not in config.logger_names()
        or config.wandb_group is not None
        or os.environ.get("WANDB_RUN_GROUP", "").strip()
    ):
        return []
    return ["--wandb-group", sweep]


def _plot_args(spec: SweepSpec, job: Job, plots: bool) -> list[str]:
    """`--no-plots` unless the sweep draws each run's plots (`plots`) or the spec sets
    `plots` itself."""
    if plots or "plots" in job.values or "plots" in spec.base:
        return []
    return ["--no-plots"]


def plan(
    spec: SweepSpec, out: Path, *, threads: int | None, fleet: int | str = 1, plots: bool = False
) -> tuple[list[Task], list[Job]]:
    """(tasks to run, jobs already finished) for the sweep in `out`; with `fleet` other than 1
    the jobs not started yet are grouped into fleets (see `fleets`). A run draws its
    own plots only with `plots` (or when the spec says so); a resumed run does as its
    config.json says. Runs that log to W&B get the sweep folder's name as their group
    (see `_group_args`)."""
    tasks: list[Task] = []
    done: list[Job] = []
    new: list[Job] = []
    sweep = out.resolve().name
    for job in spec.jobs:
        folder = out / job.name
        thread_args = _thread_args(job, threads)
        status = _status(folder)
        if status in FINAL:
            done.append(job)
            continue
        if status is None:
            new.append(job)
            continue
        if status == "unusable":  # killed before it wrote its config: start afresh
            argv = ["run", *job.options, *_group_args(job, sweep), "--out", str(folder)]
            argv += ["--overwrite", *thread_args, *_plot_args(spec, job, plots)]
        else:
            argv = ["run", "--resume", str(folder), *thread_args]
        tasks.append(Task(job.name, tuple(argv), out / LOGS / f"{job.name}.log"))
    for group in fleets(new, fleet) if fleet != 1 else [[job] for job in new]:
        first = group[0]
        thread_args = [*_thread_args(first, threads), *_plot_args(spec, first, plots)]
        thread_args += _group_args(first, sweep)  # a new run's options
        if len(group) == 1:
            argv = ["run", *first.options, "--out", str(out / first.name), *thread_args]
            tasks.append(Task(first.name, tuple(argv), out / LOGS / f"{first.name}.log"))
            continue
        names = tuple(job.name for job in group)
        argv = ["run", *first.options, *thread_args, "--fleet", str(len(group))]
        argv += ["--fleet-folders", *(str(out / name) for name in names)]
        name = f"fleet_{first.name}"
        tasks.append(Task(name, tuple(argv), out / LOGS / f"{name}.log", runs=names))
    return tasks, done


def _eta(seconds: list[float], remaining: int, parallel: int) -> str:
    if not seconds or not remaining:
        return ""
    left = sum(seconds) / len(seconds) * remaining / max(1, parallel)
    return f", about {left:.0f} s left"


def _report(outcome: Outcome, folder: Path) -> tuple[str, str]:
    """(status, what to print) for a finished task. A run that refused to start (exit
    status 2: e.g. a checkpoint failing its integrity check) failed, whatever its folder
    said before."""
    failed = f"FAILED (exit {outcome.returncode}, see {outcome.task.log})"
    try:
        record = load_run(folder)
    except ValueError:
        return "failed", failed
    status = record.status
    if status == "complete":
        a_t = record.value("A_T")
        return status, f"A_T={a_t:.4f}" if a_t is not None else "complete"
    if outcome.returncode == USAGE_ERROR and status not in FINAL:
        return "failed", failed
    return status, f"{status.upper()} (exit {outcome.returncode}, see {outcome.task.log})"


def summarize_folder(spec: SweepSpec, out: Path) -> tuple[list[SummaryRow], dict[str, str]]:
    """Summary rows over the complete runs in `out`, and the status of the others."""
    groups: dict[str, tuple[dict[str, object], list[RunRecord]]] = {}
    incomplete: dict[str, str] = {}
    for job in spec.jobs:
        key = repr(sorted(job.configuration.items()))
        group = groups.setdefault(key, (job.configuration, []))
        folder = out / job.name
        status = _status(folder)
        if status == "complete":
            group[1].append(load_run(folder))
        else:
            incomplete[job.name] = status or "not started"
    return summarize([g for g in groups.values()]), incomplete


def run_sweep(
    spec: SweepSpec,
    out: Path,
    *,
    engine: Engine,
    parallel: int,
    threads: int | None,
    stream: TextIO = sys.stdout,
    on_outcome: Callable[[Outcome], None] | None = None,
    also: frozenset[str] = frozenset(),
    fleet: int | str = 1,
    max_runs: int = MAX_RUNS,
    plots: bool = False,
) -> SweepResult:
    """Run every unfinished job of `spec` in `out` with `engine`, then write the summary.

    One line per finished run (its A_T and seconds, and its fleet if it ran in one) with
    the overall count and an estimate of the time left; `parallel` is how many tasks go
    at once (for the ETA); `fleet` K > 1 trains up to K seeds of a configuration as one
    fleet where the fleet can ("auto": all of them; "gpu": all of them on a CUDA
    device; see `plan`); each run draws its own plots only with `plots`, and the sweep's
    summary plot is always drawn. DIR is locked for the whole sweep.
    """
    write = check_folder(spec, out, also=also, max_runs=max_runs)
    lock = lock_sweep(out)
    try:
        if write:
            write_spec(spec, out)
        how = (engine, parallel, threads, stream, on_outcome, fleet, plots)
        return _run_locked(spec, out, *how)
    finally:
        os.close(lock)


def _estimate(done: Sequence[Job], out: Path, remaining: int, parallel: int) -> str:
    """A guess at the time the remaining runs take, from the finished ones."""
    seconds = []
    for job in done:
        with contextlib.suppress(ValueError):
            value = load_run(out / job.name).value("total_seconds")
            if value is not None:
                seconds.append(value)
    if not seconds or not remaining:
        return "a time estimate follows the first finished run"
    left = sum(seconds) / len(seconds) * remaining / max(1, parallel)
    return f"about {left:.0f} s at {sum(seconds) / len(seconds):.1f} s per finished run"


def _run_locked(
    spec: SweepSpec,
    out: Path,
    engine: Engine,
    parallel: int,
    threads: int | None,
    stream: TextIO,
    on_outcome: Callable[[Outcome], None] | None,
    fleet: int | str,
    plots: bool,
) -> SweepResult:
    tasks, done = plan(spec, out, threads=threads, fleet=fleet, plots=plots)
    if threads is None:  # each run picks its threads, within its share of the cores
        tasks = [replace(t, omp_threads=default_threads(parallel)) for t in tasks]
    total = len(spec.jobs)
    finished = len(done)
    if done:
        print(f"{len(done)} of {total} runs already finished, skipped", file=stream)
    remaining = total - finished
    if remaining:
        guess = _estimate(done, out, remaining, parallel)
        print(f"{remaining} runs to go, {parallel} at a time: {guess}", file=stream)
    failed: dict[str, str] = {}
    seconds: list[float] = []
    started = time.perf_counter()
    for outcome in engine.run(tasks):
        names = outcome.task.run_names
        together = f" (fleet of {len(names)})" if len(names) > 1 else ""
        for name in names:
            finished += 1
            seconds.append(outcome.seconds / len(names))
            status, text = _report(outcome, out / name)
            if status == "failed":
                failed[name] = f"failed (exit {outcome.returncode}, see {outcome.task.log})"
            eta = _eta(seconds, total - finished, parallel)
            print(
                f"[{finished}/{total}] {name}  {text}  {outcome.seconds:.1f} s{together}{eta}",
                file=stream,
                flush=True,
            )
        if on_outcome is not None:
            on_outcome(outcome)
    rows, incomplete = summarize_folder(spec, out)
    incomplete.update({name: why for name, why in failed.items() if name in incomplete})
    try:
        written = write_summary(rows, out, formats=summary_formats(spec))
    except OSError as err:
        raise SpecError(f"cannot write the summary in {out}: {err.strerror or err}") from None
    if tasks:
        print(f"sweep time {time.perf_counter() - started:.1f} s", file=stream)
    return SweepResult(rows, incomplete, written)


def summary_formats(spec: SweepSpec) -> tuple[str, ...]:
    """The formats of the summary figure: the runs' `plot_format` of the spec's base."""
    return plot_formats(str(spec.base.get("plot_format", DEFAULT_PLOT_FORMAT)))


def default_threads(workers: int) -> int:
    """Torch threads per run so that `workers` runs share this machine's cores."""
    return max(1, (os.cpu_count() or 1) // workers)


def describe_incomplete(result: SweepResult, command_hint: str) -> Sequence[str]:
    """Lines naming the runs that did not complete, and how to continue."""
    if not result.incomplete:
        return []
    lines = [f"{len(result.incomplete)} run(s) did not complete:"]
    lines += [f"  {name}  {status}" for name, status in result.incomplete.items()]
    statuses = list(result.incomplete.values())
    if "diverged" in statuses:
        lines.append("diverged runs are final: a re-run does not retry them")
    failed = [s for s in statuses if s.startswith("failed")]
    if failed:
        lines.append("failed runs stopped on an error: see their logs")
    if len(failed) + statuses.count("diverged") < len(statuses):
        lines.append(f"re-run the same command to resume the unfinished ones: {command_hint}")
    return lines
