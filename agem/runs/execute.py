"""`run(config, out)`: train and evaluate one `RunConfig`, writing the run folder `out`.

The order of a run, so that a failure leaves nothing misleading behind:

1. Check everything that depends only on the settings and the machine (the folder may
   be used, the device exists, the dataset is found, the sizes fit in memory) and build
   the benchmark, model and strategy (`SingleRun`); nothing is written yet.
2. Lock and prepare the folder; write config.json and results.json ("running").
3. Train experience by experience; after each, write the checkpoint and results.json.
4. Write the plots and results.json ("complete").

How a run ends early (signals, divergence, errors of the environment) is
`agem.runs.lifecycle`; a fleet (`config.fleet` > 1) is `agem.runs.fleet_run`.
Once the last experience is trained and evaluated (every metric recorded), a signal
no longer stops the run: it writes its plots and results and ends "complete".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agem.runs.config import RunConfig
from agem.runs.fleet_run import run_fleet
from agem.runs.folder import RunFolder, RunFolderError
from agem.runs.lifecycle import (
    RunEnvironmentError,
    RunInterrupted,
    Signals,
    TrainingDiverged,
    drive,
)
from agem.runs.single import SingleRun

__all__ = ["RunEnvironmentError", "RunInterrupted", "TrainingDiverged", "run"]


def run(
    config: RunConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    members: Sequence[str | Path] | None = None,
) -> dict[str, Any]:
    """Train and evaluate as `config` says in the run folder `out`; return the results.

    The folder gets config.json (the settings and the environment), results.json (status,
    accuracy matrix, every metric, timing and memory), checkpoint.pt, metrics.csv,
    TensorBoard events and PNG plots. `resume=True` continues the run in `out` from its
    last checkpoint (a complete run's results are returned as they are); `overwrite=True`
    clears a non-empty `out` first. `progress` forces progress bars on or off (default:
    on when stderr is a terminal).

    With `config.fleet` K > 1 the seeds seed..seed+K-1 are trained in lockstep into the
    run folders `out/seed<s>`, or `members` (one folder per seed; `out` is then unused;
    see `agem.runs.fleet_run`); the result is then
    {"status", "fleet_size", "runs": [each run's results]}. A fleet cannot be resumed as
    a whole: each of its folders resumes as a single run.

    Raises `RunFolderError` / `RunEnvironmentError` / `ValueError` (one-line messages;
    the command line exits 2), `TrainingDiverged` (exit 3) and `RunInterrupted`
    (exit 130 or 143).
    """
    config = config.resolved()
    if members is not None and config.fleet == 1:
        raise ValueError("member folders name the runs of a fleet: give --fleet K too")
    if config.fleet > 1:
        if resume:
            raise RunFolderError(
                f"a fleet is not resumed as a whole: resume each of its runs with "
                f"agem run --resume {Path(out)}/seed<s>"
            )
        with Signals() as signals:
            folders = None if members is None else [Path(m) for m in members]
            return run_fleet(
                config, Path(out), signals, overwrite=overwrite, progress=progress, members=folders
            )
    folder = RunFolder(out)
    with Signals() as signals:
        try:
            if resume:
                try:
                    folder.open_existing()
                except OSError:  # e.g. a read-only file system: a complete run stays so
                    if folder.status() != "complete":
                        raise
                if folder.status() == "complete":
                    results = folder.read_json("results.json")
                    assert results is not None
                    return results
                saved = RunConfig.from_file(folder.path / "config.json")
                differ = config.same_run(saved)
                if differ:
                    raise RunFolderError(
                        f"{folder.path}/config.json differs from the config given in "
                        f"{', '.join(differ)}"
                    )
                execution = SingleRun(config, folder, progress)
                return drive(execution, signals, execution.resume)
            folder.check_new(overwrite=overwrite)
            execution = SingleRun(config, folder, progress)
            return drive(execution, signals, lambda: execution.start(overwrite=overwrite))
        except RunInterrupted as err:
            # stopped before training: resumable only if the folder holds this run
            resumable = folder.locked and (folder.path / "config.json").is_file()
            raise RunInterrupted(err.signum, folder.path if resumable else None) from None
        finally:
            folder.unlock()
