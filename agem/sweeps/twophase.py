"""Run a preset protocol: choose hyperparameters on the first experiences, then report.

DIR/selection is the sweep of every candidate on the selection experiences; each
method's candidate with the highest mean A_T there (first one on a tie) is written to
DIR/selection.json, and DIR itself becomes the sweep of the reported runs on the
remaining experiences, with its summary. `run_published` skips the selection: DIR is
the reported sweep with the values the authors published (DIR/published.json). Both
phases are ordinary sweep folders, so a re-run of the same command continues where it
stopped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from agem.atomic import write_text_atomic
from agem.reporting.compare import load_run, mean_std
from agem.runs.folder import LOCK
from agem.sweeps.engines import Engine
from agem.sweeps.presets import Protocol
from agem.sweeps.runner import FINAL, SweepResult, run_sweep
from agem.sweeps.spec import SpecError, SweepSpec

SELECTION = "selection"
PUBLISHED = "published.json"


def choose(protocol: Protocol, spec: SweepSpec, folder: Path) -> dict[str, dict[str, Any]]:
    """Each method's searched values with the best mean A_T over the complete runs; a
    candidate that diverged on any seed is never chosen."""
    choices: dict[str, dict[str, Any]] = {}
    for method in protocol.methods:
        candidates: dict[str, tuple[dict[str, Any], list[float]]] = {}
        diverged: set[str] = set()
        for job in spec.jobs:
            if job.values.get("strategy") != method.fixed["strategy"]:
                continue
            values = {k: job.values[k] for k in method.search}
            entry = candidates.setdefault(json.dumps(values, sort_keys=True), (values, []))
            run_folder = folder / job.name
            if (run_folder / "results.json").is_file():
                record = load_run(run_folder)
                a_t = record.value("A_T")
                if record.status == "diverged":
                    diverged.add(json.dumps(values, sort_keys=True))
                elif record.status == "complete" and a_t is not None:
                    entry[1].append(a_t)
        best: tuple[float, dict[str, Any]] | None = None
        for key, (values, scores) in candidates.items():
            if key in diverged:  # a candidate that diverged on any seed is not chosen
                continue
            mean = mean_std(scores)[0]
            if mean is not None and (best is None or mean > best[0]):
                best = (mean, values)
        if best is None:
            raise SpecError(f"no complete selection run for {method.name}: cannot choose")
        choices[method.name] = {**best[1], "selection_A_T": best[0]}
    return choices


def run_protocol(
    protocol: Protocol,
    out: Path,
    *,
    engine: Engine,
    parallel: int,
    threads: int | None,
    stream: TextIO = sys.stdout,
    fleet: int | str = 1,
    plots: bool = False,
) -> SweepResult | None:
    """Both phases (runs grouped into fleets of up to `fleet` seeds where they can be;
    each run's own plots only with `plots`); None when the selection phase left runs
    unfinished."""
    selection_spec = protocol.selection_spec()
    allowed = (SELECTION, "selection.json", LOCK)
    foreign = out.exists() and any(p.name not in allowed for p in out.iterdir())
    if foreign and not (out / "sweep.toml").is_file():  # refuse before any work
        raise SpecError(f"{out} exists and is not a sweep folder; use another --out folder")
    print(
        f"{protocol.name}: selection on experiences 0:{protocol.selection}, "
        f"{len(selection_spec.jobs)} runs",
        file=stream,
    )
    selection = run_sweep(
        selection_spec,
        out / SELECTION,
        engine=engine,
        parallel=parallel,
        threads=threads,
        stream=stream,
        fleet=fleet,
        plots=plots,
    )
    if any(status not in FINAL for status in selection.incomplete.values()):
        return None  # diverged candidates are final: they just cannot be chosen
    choices = choose(protocol, selection_spec, out / SELECTION)
    write_text_atomic(out / "selection.json", json.dumps(choices, indent=2) + "\n")
    for name, values in choices.items():
        chosen = ", ".join(f"{k}={v}" for k, v in values.items() if k != "selection_A_T")
        print(f"chosen for {name}: {chosen} (A_T {values['selection_A_T']:.4f})", file=stream)
    report_spec = protocol.report_spec(_without_score(choices))
    print(
        f"{protocol.name}: report on experiences {protocol.selection}:"
        f"{protocol.n_experiences}, {len(report_spec.jobs)} runs",
        file=stream,
    )
    return run_sweep(
        report_spec,
        out,
        engine=engine,
        parallel=parallel,
        threads=threads,
        stream=stream,
        fleet=fleet,
        plots=plots,
        also=frozenset({SELECTION, "selection.json"}),
    )


def run_published(
    protocol: Protocol,
    out: Path,
    *,
    engine: Engine,
    parallel: int,
    threads: int | None,
    stream: TextIO = sys.stdout,
    fleet: int | str = 1,
    plots: bool = False,
) -> SweepResult:
    """The reported phase alone, with the hyperparameters the authors published (each
    method's values and their source written to DIR/published.json)."""
    spec = protocol.published_spec()
    if (
        out.exists()
        and any(p.name != LOCK for p in out.iterdir())
        and not (out / "sweep.toml").is_file()
    ):
        raise SpecError(f"{out} exists and is not a sweep folder; use another --out folder")
    record = {
        m.name: {**(m.published or {}), "source": m.source} for m in protocol.methods if m.search
    }
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / PUBLISHED, json.dumps(record, indent=2) + "\n")
    for name, values in record.items():
        chosen = ", ".join(f"{k}={v}" for k, v in values.items() if k != "source")
        print(f"published for {name}: {chosen} ({values['source']})", file=stream)
    print(
        f"{protocol.name}: report on experiences {protocol.selection}:"
        f"{protocol.n_experiences} with the published values, {len(spec.jobs)} runs",
        file=stream,
    )
    return run_sweep(
        spec,
        out,
        engine=engine,
        parallel=parallel,
        threads=threads,
        stream=stream,
        fleet=fleet,
        plots=plots,
        also=frozenset({PUBLISHED}),
    )


def _without_score(choices: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m: {k: v for k, v in c.items() if k != "selection_A_T"} for m, c in choices.items()}
