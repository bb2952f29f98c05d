"""`scripts/results_table.py` renders RESULTS.md's table from a sweep folder, and the
per-run records kept in `results/` are a partial sweep folder of the command RESULTS.md
names: rerunning that command there runs only the missing seeds, and RESULTS.md's table
is the script's rendering of those records, digit for digit."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from agem.sweeps.presets import get_preset
from agem.sweeps.runner import plan
from agem.sweeps.spec import parse_spec

ROOT = Path(__file__).resolve().parents[2]
KEPT = ROOT / "results" / "agem-paper-pfmnist-published"
# options a run records that do not change what it trains (or that older versions of
# agem did not record yet)
RUNTIME_ONLY = {"environment", "threads", "plots", "plot_format", "plugin"}


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "results_table", ROOT / "scripts" / "results_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(folder: Path, config: dict[str, Any], results: dict[str, Any] | None) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    if results is not None:
        (folder / "results.json").write_text(json.dumps(results))


def test_seed_ranges() -> None:
    ranges = _script()._ranges
    assert ranges([0, 1, 2, 4]) == "0-2, 4"
    assert ranges([3]) == "3"
    assert ranges([4, 0, 2, 1]) == "0-2, 4"
    assert ranges([0, 2, 4]) == "0, 2, 4"


def test_seeds_column_says_which_seeds_are_in_and_what_the_others_are(tmp_path: Path) -> None:
    spec = parse_spec(
        '[base]\nn_experiences = 4\nlr = 0.1\n\n[[grid]]\nstrategy = ["naive"]\nseed = [0, 1, 2]\n'
        '\n[[grid]]\nstrategy = ["si"]\nseed = [0, 1, 2]\n'
        '\n[[grid]]\nstrategy = ["gem"]\nmemory_strength = [0.5]\nseed = [0, 1, 2]\n'
    )
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.toml").write_text(spec.to_toml())
    done = {"status": "complete", "A_T": 0.5, "F_T": 0.1, "LCA_10": 0.2, "train_seconds": 10.0}
    for seed, a_t in ((0, 0.40), (1, 0.50), (2, 0.60)):
        _run(
            out / f"naive-{seed}",
            {"strategy": "naive", "seed": seed, "lr": 0.1},
            {**done, "A_T": a_t},
        )
    for seed, task in ((0, 1), (2, 1)):
        diverged = {"status": "diverged", "diverged": {"experience": task, "iteration": 6}}
        _run(out / f"si-{seed}", {"strategy": "si", "seed": seed, "lr": 0.1}, diverged)
    gem = {"strategy": "gem", "lr": 0.1, "memory_strength": 0.5}
    _run(out / "gem-0", {**gem, "seed": 0}, {**done, "train_seconds": 30.0})
    _run(out / "gem-2", {**gem, "seed": 2}, {**done, "train_seconds": 50.0})
    _run(out / "gem-1", {**gem, "seed": 1}, None)  # started, no results yet
    own = {"strategy": "my.methods:Own", "seed": 0, "lr": 0.1, "strategy_args": {"scale": 2}}
    _run(out / "own-0", own, done)  # a strategy of one's own, not in the spec
    script = _script()
    rows = {
        line.split(" | ")[0].strip("| "): line.split(" | ")
        for line in script.table(out).splitlines()
    }
    assert rows["VAN"][1:5] == ["lr 0.1", "3", "50.0 ± 10.0", "0.100 ± 0.000"]
    assert rows["PI (SI)"][2] == "0 of 3 (2 diverged in reported task 2; 1 not run)"
    assert rows["GEM"][1:3] == ["lr 0.1, margin 0.5", "2 of 3 (seeds 0, 2; 1 not started)"]
    assert rows["GEM"][6] == "40 ± 14"
    assert rows["my.methods:Own"][1:3] == ["lr 0.1, scale 2", "1"]
    assert script.total_hours(out) == (8, pytest.approx((4 * 10.0 + 30.0 + 50.0) / 3600))


def test_variants_of_one_strategy_get_a_row_each(tmp_path: Path) -> None:
    """Runs of one strategy with other values are never averaged into one row."""
    spec = parse_spec(
        '[base]\nn_experiences = 4\nstrategy = "agem.strategies.mas:MAS"\nseed = 0\n'
        "\n[[grid]]\nlr = [0.1, 0.03]\nstrategy_args = [{mas_lambda = 1}, {mas_lambda = 2}]\n"
    )
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.toml").write_text(spec.to_toml())
    done = {"status": "complete", "F_T": 0.1, "LCA_10": 0.2, "train_seconds": 10.0}
    own = {"strategy": "agem.strategies.mas:MAS", "seed": 0}
    _run(out / "a", {**own, "lr": 0.1, "strategy_args": {"mas_lambda": 1}}, {**done, "A_T": 0.4})
    _run(out / "b", {**own, "lr": 0.1, "strategy_args": {"mas_lambda": 2}}, {**done, "A_T": 0.6})
    diverged = {"status": "diverged", "diverged": {"experience": 2, "iteration": 1}}
    _run(out / "c", {**own, "lr": 0.03, "strategy_args": {"mas_lambda": 1}}, diverged)
    lines = _script().table(out, paper=False).splitlines()[2:]
    assert [line.split(" | ")[1:4] for line in lines] == [
        ["lr 0.1, mas_lambda 1", "1", "40.0"],
        ["lr 0.1, mas_lambda 2", "1", "60.0"],
        ["lr 0.03, mas_lambda 1", "0 of 1 (1 diverged in reported task 3)", ""],
    ]  # lr 0.03 with mas_lambda 2 was not started: no row


def _table_in_results_md() -> str:
    text = (ROOT / "RESULTS.md").read_text()
    section = text.split("## The ICLR'19 protocol", 1)[1]
    lines = section.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("| method |"))
    end = next(i for i in range(first, len(lines)) if not lines[i].startswith("|"))
    return "\n".join(lines[first:end]) + "\n"


def test_results_md_table_is_the_rendering_of_the_kept_records() -> None:
    script = _script()
    assert _table_in_results_md() == script.table(KEPT)
    for variants in ("agem-paper-pfmnist-mas-authors", "agem-paper-pfmnist-mas-split"):
        table = script.table(ROOT / "results" / variants, paper=False)
        assert table in (ROOT / "RESULTS.md").read_text(), variants
    runs, hours = script.total_hours(KEPT)
    assert f"{runs} runs" in (ROOT / "RESULTS.md").read_text()
    assert re.search(rf"\b{hours:.1f} hours\b", (ROOT / "RESULTS.md").read_text())


def test_kept_records_are_a_partial_sweep_of_the_published_command() -> None:
    """`agem sweep --preset agem-paper-pfmnist --published --out <a copy of the folder>`
    accepts the folder (the same spec), skips every kept run and starts only the others."""
    spec = get_preset("agem-paper-pfmnist").published_spec()
    assert (KEPT / "sweep.toml").read_text() == spec.to_toml()
    jobs = {job.name: job for job in spec.jobs}
    kept = sorted(p.name for p in KEPT.iterdir() if p.is_dir())
    assert kept and set(kept) <= set(jobs)
    for name in kept:
        recorded = json.loads((KEPT / name / "config.json").read_text())
        config = jobs[name].config
        assert config is not None
        planned = config.to_dict()
        differ = {k for k in recorded if k not in RUNTIME_ONLY and recorded[k] != planned.get(k)}
        assert not differ, (name, {k: (recorded[k], planned.get(k)) for k in differ})
        assert recorded["environment"]["threads"] == 1, name  # as RESULTS.md says
    tasks, done = plan(spec, KEPT, threads=1)
    assert sorted(job.name for job in done) == kept  # each kept run is complete or diverged
    assert all("--resume" not in task.argv for task in tasks)
    assert {task.name for task in tasks} == set(jobs) - set(kept)
