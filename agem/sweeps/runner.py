"""Run a sweep into a folder: plan each grid point, hand the work to an engine, summarise.

The sweep folder DIR holds `sweep.toml` (the spec, so that a re-run with a different
spec is refused), one run folder per grid point, `logs/` (each run's output) and the
summary. Re-running the same sweep is safe at any point: a complete run is skipped, an
unfinished one is resumed from its checkpoint (`agem run --resume`), a missing one is
started, so the summary ends equal to an uninterrupted sweep's.

With `fleet` K > 1, runs not yet started that differ only in their seed, with
consecutive seeds, go K at a time into one `agem run --fleet K --fleet-folders ...`
(when their strategy and model can be trained as a fleet), each member still writing
its own folder DIR/<run name>; a member that was interrupted resumes as a single run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from agem.atomic import write_text_atomic
from agem.reporting.compare import RunRecord, load_run, run_status
from agem.runs.config import MAX_FLEET, RunConfig
from agem.runs.options import parse_run_argv
from agem.sweeps.engines import Engine, Outcome, Task
from agem.sweeps.spec import Job, SpecError, SweepSpec, parse_spec
from agem.sweeps.summary import SummaryRow, summarize, write_summary

SPEC_FILE = "sweep.toml"
LOGS = "logs"
# A run that ended in one of these is not run again (a diverged run would diverge again).
FINAL = ("complete", "diverged")


@dataclass(frozen=True)
class SweepResult:
    """What a sweep ended with: the summary rows and the runs that are not complete."""

    rows: list[SummaryRow]
    incomplete: dict[str, str]  # run name -> status
    written: list[Path]


def prepare_folder(spec: SweepSpec, out: Path, *, also: frozenset[str] = frozenset()) -> None:
    """Create DIR with the spec, or check that DIR holds this very sweep, or one that
    `spec` extends (every stored run again, with the same options: the stored spec is
    then replaced and the new runs are added).

    Raises SpecError (one line) for a folder of another sweep or a non-empty folder
    that is not a sweep folder (entries named in `also` may be there already).
    """
    stored = out / SPEC_FILE
    if stored.is_file():
        try:
            previous = parse_spec(stored.read_text(encoding="utf-8"), source=str(stored))
        except SpecError as err:
            raise SpecError(f"{out} holds a sweep spec that no longer validates: {err}") from None
        if previous.canonical() == spec.canonical():
            return
        if not _grows(previous, spec):
            raise SpecError(
                f"{out} holds a different sweep (see {stored}); use another --out folder"
            )
        write_text_atomic(stored, spec.to_toml())  # the sweep grows: its runs stay valid
        return
    if out.exists() and (not out.is_dir() or any(p.name not in also for p in out.iterdir())):
        raise SpecError(f"{out} exists and is not a sweep folder; use another --out folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(stored, spec.to_toml())
    except OSError as err:
        raise SpecError(f"cannot write the sweep folder {out}: {err.strerror or err}") from None


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


def fleets(jobs: Sequence[Job], size: int) -> list[list[Job]]:
    """The jobs in groups to run together: at most `size` jobs whose configs differ only
    in their seed, with consecutive seeds, and that a fleet can train; others alone."""
    size = min(size, MAX_FLEET)
    groups: list[list[Job]] = []
    alike: dict[str, list[tuple[int, Job]]] = {}
    for job in jobs:
        config = job.config if job.config is not None else parse_run_argv(job.options)
        if not _fleet_capable(config):
            groups.append([job])
            continue
        key = json.dumps({**config.to_dict(), "seed": None}, sort_keys=True, default=str)
        alike.setdefault(key, []).append((config.seed, job))
    for members in alike.values():
        members.sort(key=lambda member: member[0])
        group: list[Job] = []
        last = -2
        for seed, job in members:
            if group and (seed != last + 1 or len(group) == size):
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


def plan(
    spec: SweepSpec, out: Path, *, threads: int | None, fleet: int = 1
) -> tuple[list[Task], list[Job]]:
    """(tasks to run, jobs already finished) for the sweep in `out`; with `fleet` > 1
    the jobs not started yet are grouped into fleets (see `fleets`)."""
    tasks: list[Task] = []
    done: list[Job] = []
    new: list[Job] = []
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
            argv = ["run", *job.options, "--out", str(folder), "--overwrite", *thread_args]
        else:
            argv = ["run", "--resume", str(folder), *thread_args]
        tasks.append(Task(job.name, tuple(argv), out / LOGS / f"{job.name}.log"))
    for group in fleets(new, fleet) if fleet > 1 else [[job] for job in new]:
        first = group[0]
        thread_args = _thread_args(first, threads)
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
    """(status, what to print) for a finished task."""
    try:
        record = load_run(folder)
    except ValueError:
        return "failed", f"FAILED (exit {outcome.returncode}, see {outcome.task.log})"
    status = record.status
    if status == "complete":
        a_t = record.value("A_T")
        return status, f"A_T={a_t:.4f}" if a_t is not None else "complete"
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
    fleet: int = 1,
) -> SweepResult:
    """Run every unfinished job of `spec` in `out` with `engine`, then write the summary.

    One line per finished run (its A_T and seconds, and its fleet if it ran in one) with
    the overall count and an estimate of the time left; `parallel` is how many tasks go
    at once (for the ETA); `fleet` K > 1 trains up to K seeds of a configuration as one
    fleet where the fleet can (see `plan`).
    """
    prepare_folder(spec, out, also=also)
    tasks, done = plan(spec, out, threads=threads, fleet=fleet)
    if threads is None:  # each run picks its threads, within its share of the cores
        tasks = [replace(t, omp_threads=default_threads(parallel)) for t in tasks]
    total = len(spec.jobs)
    finished = len(done)
    if done:
        print(f"{len(done)} of {total} runs already finished, skipped", file=stream)
    seconds: list[float] = []
    started = time.perf_counter()
    for outcome in engine.run(tasks):
        names = outcome.task.run_names
        together = f" (fleet of {len(names)})" if len(names) > 1 else ""
        for name in names:
            finished += 1
            seconds.append(outcome.seconds / len(names))
            _, text = _report(outcome, out / name)
            eta = _eta(seconds, total - finished, parallel)
            print(
                f"[{finished}/{total}] {name}  {text}  {outcome.seconds:.1f} s{together}{eta}",
                file=stream,
                flush=True,
            )
        if on_outcome is not None:
            on_outcome(outcome)
    rows, incomplete = summarize_folder(spec, out)
    try:
        written = write_summary(rows, out)
    except OSError as err:
        raise SpecError(f"cannot write the summary in {out}: {err.strerror or err}") from None
    if tasks:
        print(f"sweep time {time.perf_counter() - started:.1f} s", file=stream)
    return SweepResult(rows, incomplete, written)


def default_threads(workers: int) -> int:
    """Torch threads per run so that `workers` runs share this machine's cores."""
    return max(1, (os.cpu_count() or 1) // workers)


def describe_incomplete(result: SweepResult, command_hint: str) -> Sequence[str]:
    """Lines naming the runs that did not complete, and how to continue."""
    if not result.incomplete:
        return []
    lines = [f"{len(result.incomplete)} run(s) did not complete:"]
    lines += [f"  {name}  {status}" for name, status in result.incomplete.items()]
    lines.append(f"re-run the same command to resume them: {command_hint}")
    return lines
