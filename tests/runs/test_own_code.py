"""Run settings that name code of your own (`model`, `benchmark`, `strategy`, `plugin` and
their arguments): checked when a `RunConfig` is made, written to config.json and read
back, and run, here with agem's own classes named by import path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agem.cli.main import main
from agem.runs.config import RunConfig
from agem.runs.options import parse_run_argv
from tests.helpers.runs import results

OWN = [
    "--model",
    "agem.models:MLP",
    "--model-args",
    '{"hidden_sizes": [16]}',
    "--benchmark",
    "agem.benchmarks:split_digits",
    "--benchmark-args",
    '{"fixed_class_order": [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]}',
    "--plugin",
    "agem.runs.divergence:DivergenceCheck",
    "--plugin",
    'agem.plugins:ReplayPlugin:{"mem_size": 30}',
    "--strategy",
    "naive",
    "--threads",
    "1",
    "--lca-test-size",
    "50",
]


def test_own_code_settings_round_trip_through_config_json() -> None:
    config = parse_run_argv(OWN)
    assert config.model_args == {"hidden_sizes": [16]}
    assert config.plugin == (
        "agem.runs.divergence:DivergenceCheck",
        'agem.plugins:ReplayPlugin:{"mem_size": 30}',
    )
    assert config.n_experiences == 5  # split_digits' own default
    data = json.loads(json.dumps(config.to_dict()))
    assert RunConfig.from_dict(data) == config
    assert config.own_code() == [
        "--benchmark agem.benchmarks:split_digits",
        "--model agem.models:MLP",
        "--plugin agem.runs.divergence:DivergenceCheck",
        "--plugin agem.plugins:ReplayPlugin",
    ]
    assert RunConfig().own_code() == []


def test_empty_arguments_are_none_and_objects_must_be_json() -> None:
    assert RunConfig(model="agem.models:MLP", model_args={}).model_args is None
    for bad in ({"x": float("nan")}, {1: 2}, [1], "x"):
        with pytest.raises(ValueError, match=r"^--model-args must be a JSON object"):
            RunConfig(model="agem.models:MLP", model_args=bad)  # type: ignore[arg-type]


def test_a_run_by_import_paths_replays_with_its_config(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["run", *OWN, "--out", str(first)]) == 0
    done = results(first)
    assert done["status"] == "complete" and len(done["accuracy_matrix"]) == 5
    saved = json.loads((first / "config.json").read_text())
    assert saved["benchmark_args"] == {"fixed_class_order": [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]}
    assert main(["run", "--config", str(first / "config.json"), "--out", str(second)]) == 0
    assert results(second)["accuracy_matrix"] == done["accuracy_matrix"]


def test_a_benchmark_without_a_default_length_records_the_one_it_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "fixed_bench_x.py").write_text(
        "from agem.benchmarks import split_digits\n"
        "def two():\n    return split_digits(2)\n"
        "def sized(n_experiences):\n    return split_digits(n_experiences)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = parse_run_argv(["--benchmark", "fixed_bench_x:two"])
    assert config.n_experiences is None  # known once the run has built it
    out = tmp_path / "run"
    argv = ["run", "--benchmark", "fixed_bench_x:two", "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    assert json.loads((out / "config.json").read_text())["n_experiences"] == 2
    assert results(out)["n_experiences"] == 2
    assert main(["run", "--benchmark", "fixed_bench_x:sized", "--out", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err.endswith(
        "agem: error: --benchmark fixed_bench_x:sized needs --n-experiences (no default)\n"
    )
