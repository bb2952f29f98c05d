"""`agem run --fleet K`: K run folders `OUT/seed<s>` trained in lockstep by one `Fleet`.

Each member is built as a single run is (`agem.runs.single.SingleRun`), with
the config it would have alone (`fleet` 1, its own seed), and owns a normal run folder:
config.json, results.json with its status, a checkpoint after each experience, logs and
plots, written atomically under the folder's lock. So `agem compare OUT/seed*` reads
them, and `agem run --resume OUT/seed<s>` continues one of them as a single run. The
folder OUT itself holds only the member folders and a lock (one fleet at a time).
`members` names the member folders instead (one per seed, anywhere: what a sweep uses
to put each run where it expects it); each is then locked on its own, with no OUT.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agem.fleet.fleet import Fleet
from agem.runs.config import RunConfig
from agem.runs.folder import RunFolder
from agem.runs.lifecycle import RunInterrupted, Signals, drive
from agem.runs.single import SingleRun


def member_configs(config: RunConfig) -> list[RunConfig]:
    """The configs of the fleet's runs: seeds seed..seed+K-1, each with `fleet` 1, so
    that its config.json describes (and resumes) it as a single run."""
    return [dataclasses.replace(config, seed=config.seed + i, fleet=1) for i in range(config.fleet)]


def member_folder(out: Path, config: RunConfig) -> Path:
    """The run folder of the member with `config` in the fleet folder `out`."""
    return out / f"seed{config.seed}"


class FleetRun:
    """A fleet being executed: its members' `SingleRun`s (built before any folder is touched)
    and the `Fleet` that trains them."""

    def __init__(
        self, config: RunConfig, parent: Path | None, folders: Sequence[Path], progress: bool | None
    ) -> None:
        self.parent = RunFolder(parent) if parent is not None else None
        self.runs: list[SingleRun] = []
        for i, (member, path) in enumerate(zip(member_configs(config), folders, strict=True)):
            folder = RunFolder(path)
            self.runs.append(SingleRun(member, folder, progress, console=i == 0, capture=False))
        for run in self.runs:
            run.extra["fleet_size"] = config.fleet
        self.fleet = Fleet([r.strategy for r in self.runs], cuda_graph=config.cuda_graph)
        self.checkpoint = config.checkpoint
        self.started: list[SingleRun] = []

    def start(self, *, overwrite: bool) -> None:
        """Create and lock OUT (if any) and every member folder; write their first files."""
        if self.parent is not None:
            self.parent.create(overwrite=overwrite)
        for run in self.runs:
            self.started.append(run)
            run.start(overwrite=overwrite and self.parent is None)

    def train(self, signals: Signals) -> dict[str, Any]:
        """Train every experience in lockstep; after each, each member's checkpoint and
        results; then finish each folder."""
        streams = [list(r.benchmark.train_stream) for r in self.runs]
        start = time.perf_counter()
        for step in range(len(streams[0])):
            self.fleet.train([s[step] for s in streams])
            if step == len(streams[0]) - 1:
                signals.raise_pending()  # one that training swallowed still interrupts
                signals.hold()  # every metric is recorded: the runs end complete
            elapsed = time.perf_counter() - start
            with signals.critical():
                if self.checkpoint:
                    self.fleet.sync_member_optimizers()
                for run in self.runs:
                    run.experience_done(elapsed)
        with signals.critical():
            elapsed = time.perf_counter() - start
            runs = [run.finish(elapsed) for run in self.runs]
        return {"status": "complete", "fleet_size": len(runs), "runs": runs}

    def end(self, status: str, **extra: Any) -> None:
        """Record `status` in every member folder already started."""
        for run in self.started:
            run.end(status, **extra)

    def unlock(self) -> None:
        for run in self.runs:
            run.folder.unlock()
        if self.parent is not None:
            self.parent.unlock()


def run_fleet(
    config: RunConfig,
    out: Path,
    signals: Signals,
    *,
    overwrite: bool = False,
    progress: bool | None = None,
    members: Sequence[Path] | None = None,
) -> dict[str, Any]:
    """Build the K runs of `config` as separate runs would be, train them as one `Fleet`,
    and write each run folder `out/seed<s>` (or `members[i]` for seed seed+i, with `out`
    unused); only the first run reports on the console.

    Everything that depends only on the settings and the machine (the folder may be
    used, the device, `--cuda-graph`'s requirements, the data) is checked before any
    folder is created. Returns {"status", "fleet_size", "runs": [each run's results]}.
    """
    if members is None:
        parent: Path | None = out
        folders = [member_folder(out, member) for member in member_configs(config)]
    else:
        if len(members) != config.fleet or len(set(members)) != len(members):
            raise ValueError(
                f"--fleet {config.fleet} needs {config.fleet} distinct member folders, "
                f"got {len(members)}"
            )
        parent, folders = None, list(members)
    for path in [parent] if parent is not None else folders:
        RunFolder(path).check_new(overwrite=overwrite)
    execution: FleetRun | None = None
    try:
        execution = FleetRun(config, parent, folders, progress)
        fleet = execution
        return drive(fleet, signals, lambda: fleet.start(overwrite=overwrite))
    except RunInterrupted as err:
        started = execution is not None and bool(execution.started)
        where = out if parent is not None else folders[0]
        raise RunInterrupted(err.signum, where if started else None) from None
    finally:
        if execution is not None:
            execution.unlock()
