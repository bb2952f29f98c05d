"""The paper presets: which protocol each runs (full training set against 1,000 examples
per task), their methods, the published hyperparameters, and `agem sweep --published`."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agem.cli.main import main
from agem.data import DATASETS, write_idx
from agem.sweeps.presets import PRESETS, get_preset
from agem.sweeps.spec import SpecError

ICLR = ("agem-paper-pmnist", "agem-paper-pfmnist")
TINY = ("tiny-memories-pmnist", "tiny-memories-pfmnist")
TEN = {"naive", "ewc", "si", "mas", "rwalk", "pnn", "gem", "agem", "replay", "cumulative"}
IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def _value(argv: tuple[str, ...] | list[str], flag: str) -> str | None:
    argv = list(argv)
    if flag not in argv:
        return None
    return argv[len(argv) - 1 - argv[::-1].index(flag) + 1]


def test_list_presets_names_both_papers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--list-presets"]) == 0
    listed = capsys.readouterr().out
    for name in (*ICLR, *TINY, "agem-paper-split-cifar"):
        assert name in listed
    lines = {line.split()[0]: line for line in listed.splitlines() if line.strip()}
    assert all("ICLR'19" in lines[n] and "full training set" in lines[n] for n in ICLR)
    assert all("iny-memories paper" in lines[n] and "1,000 examples" in lines[n] for n in TINY)


@pytest.mark.parametrize("name", ICLR)
def test_iclr_presets_train_on_the_whole_training_set(name: str) -> None:
    """No run of the ICLR'19 presets, selection or reported, keeps a training subset."""
    protocol = get_preset(name)
    assert "train_subset" not in protocol.base
    for spec in (protocol.selection_spec(), protocol.published_spec()):
        for job in spec.jobs:
            assert "--train-subset" not in job.options
            assert _value(job.options, "--n-experiences") == "20"
            assert _value(job.options, "--batch-size") == "10"
            assert _value(job.options, "--epochs") == "1"
            assert _value(job.options, "--hidden-sizes") == "256,256"


@pytest.mark.parametrize("name", TINY)
def test_tiny_memories_presets_keep_1000_examples_and_10_memories_per_task(name: str) -> None:
    protocol = get_preset(name)
    jobs = protocol.selection_spec().jobs
    assert all(_value(j.options, "--train-subset") == "1000" for j in jobs)
    assert {j.values["strategy"] for j in jobs} == {
        "naive",
        "ewc",
        "gem",
        "agem",
        "replay",
        "cumulative",
    }
    for job in jobs:
        if job.values["strategy"] in ("gem", "agem"):
            assert _value(job.options, "--patterns-per-experience") == "10"
        if job.values["strategy"] == "replay":
            assert _value(job.options, "--mem-size") == "30"  # 10 x 3 selection tasks
    with pytest.raises(SpecError, match="no published hyperparameters for naive"):
        protocol.published_spec()


@pytest.mark.parametrize("name", ICLR)
def test_iclr_presets_run_the_ten_methods(name: str) -> None:
    protocol = get_preset(name)
    jobs = protocol.selection_spec().jobs
    assert {j.values["strategy"] for j in jobs} == TEN
    for job in jobs:
        strategy = job.values["strategy"]
        # only progressive networks get task identity: they need one column per task
        assert ("--task-labels" in job.options) == (strategy == "pnn")
        if strategy == "ewc":
            assert _value(job.options, "--ewc-mode") == "running"
        if strategy in ("gem", "agem"):
            assert _value(job.options, "--patterns-per-experience") == "250"
    counts = {s: sum(j.values["strategy"] == s for j in jobs) for s in TEN}
    # 6 learning rates x 5 seeds, times the penalty grid of the regularisers
    assert counts == {
        "naive": 30,
        "pnn": 30,
        "gem": 30,
        "agem": 30,
        "replay": 30,
        "cumulative": 30,
        "ewc": 120,
        "si": 150,
        "mas": 150,
        "rwalk": 120,
    }
    assert len(protocol.published_spec().jobs) == 10 * 5


def test_published_values_are_the_authors() -> None:
    """replicate_results_iclr19.sh (MNIST), GEM's run_experiments.sh, the ER script."""
    report = get_preset("agem-paper-pfmnist").published_spec()
    chosen = {}
    for job in report.jobs:
        values = {k: v for k, v in job.values.items() if k not in ("strategy", "seed")}
        chosen.setdefault(job.values["strategy"], values)
        assert _value(job.options, "--experiences") == "3:20"
    assert chosen["naive"] == {"lr": 0.03}
    assert chosen["ewc"]["lr"] == 0.03 and chosen["ewc"]["ewc_lambda"] == 10.0
    assert chosen["si"]["lr"] == 0.1 and chosen["si"]["si_lambda"] == 0.1
    assert chosen["mas"]["lr"] == 0.1 and chosen["mas"]["mas_lambda"] == 0.1
    assert chosen["rwalk"]["lr"] == 0.1 and chosen["rwalk"]["rwalk_lambda"] == 1.0
    assert chosen["pnn"]["lr"] == 0.1 and chosen["agem"]["lr"] == 0.1
    assert chosen["gem"]["lr"] == 0.1 and chosen["replay"]["lr"] == 0.1
    assert {j.values["seed"] for j in report.jobs} == {0, 1, 2, 3, 4}
    cifar = {m.name: m.published for m in get_preset("agem-paper-split-cifar").methods}
    assert "pnn" not in cifar  # progressive networks are MLPs here
    assert cifar["naive"] == {"lr": 0.01} and cifar["agem"] == {"lr": 0.03}
    assert cifar["si"] == {"lr": 0.01, "si_lambda": 0.1}
    assert cifar["rwalk"] == {"lr": 0.03, "rwalk_lambda": 1.0}
    for preset in PRESETS:
        for method in get_preset(preset).methods:
            assert (method.published is None) == (method.source == "")


@pytest.fixture
def fashion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder with a tiny Fashion-MNIST of 60 training images (no system dirs)."""
    for key in DATASETS:
        monkeypatch.setitem(DATASETS, key, dataclasses.replace(DATASETS[key], system_dirs=()))
    folder = tmp_path / "data" / "fashion-mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = (
        rng.integers(0, 256, (60, 28, 28), dtype=np.uint8),
        (np.arange(60) % 10).astype(np.uint8),
        rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        (np.arange(20) % 10).astype(np.uint8),
    )
    for name, a in zip(IDX_NAMES, arrays, strict=True):
        write_idx(folder / name, a)
    return tmp_path / "data"


def _iterations(run: Path) -> int:
    with (run / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["name"] == "train/loss"]
    return max(int(r["iteration"]) for r in rows)


@pytest.mark.slow
def test_a_published_paper_sweep_trains_on_every_example(
    fashion: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--published` runs the reported phase alone; a run of the ICLR'19 preset steps
    through all 60 training images of each task (6 minibatches of 10), the tiny-memories
    preset's subset would be cut to its size."""
    out = tmp_path / "sweep"
    common = ["--set", "n_experiences=5", "--set", "seeds=1", "--set", f'data_dir="{fashion}"']
    common += ["--set", "download=false", "--set", "log_every=1", "--set", "lca_beta=2"]
    args = ["sweep", "--preset", "agem-paper-pfmnist", "--published", "--out", str(out)]
    # the paper's methods at their published values, on experiences 3:5
    assert main([*args, *common, "--workers", "1"]) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "published for ewc: lr=0.03, ewc_lambda=10.0 (replicate_results_iclr19.sh" in text
    record = json.loads((out / "published.json").read_text())
    assert record["rwalk"]["rwalk_lambda"] == 1.0
    assert not (out / "selection").exists()
    runs = sorted(p for p in out.iterdir() if (p / "results.json").is_file())
    assert {json.loads((r / "config.json").read_text())["strategy"] for r in runs} == TEN
    naive = next(r for r in runs if r.name.startswith("strategy-naive"))
    config = json.loads((naive / "config.json").read_text())
    assert config["train_subset"] is None and config["experiences"] == "3:5"
    assert _iterations(naive) == 2 * 6  # two tasks of all 60 examples, minibatches of 10
    table = _results_table(out)
    row = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()}
    assert row["VAN"].startswith("| VAN | lr 0.03 | 1 | ") and "47.9 ± 1.32" in row["VAN"]
    assert "| RWALK | lr 0.1, λ 1 | 1 |" in row["RWALK"]
    assert len([r for r in row if r not in ("method", "")]) == 11  # header rule + 10 methods
    ewc = next(r for r in runs if r.name.startswith("strategy-ewc"))
    results = json.loads((ewc / "results.json").read_text())
    (ewc / "results.json").write_text(json.dumps({**results, "status": "diverged"}))
    assert "| EWC | lr 0.03, λ 10 | 0 of 1 (1 diverged) |  |" in _results_table(out)
    # the same run with a subset sees fewer: the count above is the data's size
    small = tmp_path / "small"
    rerun = ["run", "--config", str(naive / "config.json"), "--train-subset", "30"]
    assert main([*rerun, "--out", str(small)]) == 0
    capsys.readouterr()
    assert _iterations(small) == 2 * 3


def _results_table(folder: Path) -> str:
    script = Path(__file__).resolve().parents[2] / "scripts" / "results_table.py"
    done = subprocess.run(
        [sys.executable, str(script), str(folder)], capture_output=True, text=True, check=True
    )
    return done.stdout


def test_published_refuses_what_it_cannot_honour(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "x")
    paper = ["sweep", "--preset", "agem-paper-pfmnist", "--published", "--out", out]
    assert main([*paper, "--set", "lr=[0.1]"]) == 2
    assert "--published fixes lr" in capsys.readouterr().err
    tiny = ["sweep", "--preset", "tiny-memories-pfmnist", "--published", "--out", out]
    assert main(tiny) == 2
    assert "no published hyperparameters for naive" in capsys.readouterr().err
    toml = tmp_path / "s.toml"
    toml.write_text('[grid]\nstrategy = ["naive"]\n')
    assert main(["sweep", str(toml), "--published", "--out", out]) == 2
    assert "--published applies to presets" in capsys.readouterr().err
    assert not Path(out).exists()


@pytest.mark.slow
def test_sweeps_doc_counts_the_runs_each_preset_really_runs() -> None:
    """docs/SWEEPS.md's cost table and smoke-test sentence agree with the presets."""
    import re
    import shlex

    text = (Path(__file__).parents[2] / "docs" / "SWEEPS.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `--preset ([\w-]+)( --published)?`(?: \((\w+)\))? \| (\d+)", text, re.M)
    assert len(rows) >= 5
    for name, published, phase, runs in rows:
        preset = get_preset(name)
        if phase == "selection":
            expected = len(preset.selection_spec().jobs)
        else:
            expected = len(preset.methods) * len(preset.seeds)
            if published:
                expected = len(preset.published_spec().jobs)
        assert int(runs) == expected, (name, published, phase)
    command = text.split("a quick smoke test:")[1].split("```bash")[1].split("```")[0]
    words = shlex.split(command.replace("\\\n", " "))
    sets = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    overrides = {}
    for item in sets:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value) if value[0] in "[0123456789" else value
    smoke = get_preset(words[words.index("--preset") + 1]).with_overrides(overrides)
    selection = len(smoke.selection_spec().jobs)
    reported = len(smoke.published_spec().jobs)
    claim = re.search(r"That smoke test runs (\d+) runs: (\d+) in the selection phase", text)
    assert claim is not None
    assert [int(claim[1]), int(claim[2])] == [selection + reported, selection]
    assert f"and {reported} reported" in " ".join(text.split())
