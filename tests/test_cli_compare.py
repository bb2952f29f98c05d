"""`agem compare`: a table of run folders, mean ± std over seeds, a plot, clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agem.cli.main import main
from agem.reporting import comparison_rows, format_table, load_run

SMALL = ["--n-experiences", "2", "--hidden-sizes", "16", "--threads", "1", "--lca-beta", "3"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    dirs = []
    for strategy in ("naive", "agem"):
        out = root / strategy
        args = ["run", "--strategy", strategy, "--out", str(out), *SMALL]
        if strategy == "agem":
            args += ["--patterns-per-experience", "20", "--sample-size", "10"]
        assert main(args) == 0
        dirs.append(out)
    return dirs


def test_compare_two_run_folders(
    two_runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["compare", *map(str, two_runs), "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    header = lines[0].split()
    assert header[:3] == ["strategy", "benchmark", "seeds"]
    assert {"A_T", "F_T", "BWT", "FWT", "LCA_10", "train", "peak"} <= set(header)
    assert lines[2].startswith("naive") and lines[3].startswith("agem")
    results = json.loads((two_runs[0] / "results.json").read_text())
    assert f"{results['A_T']:.4f}" in lines[2]
    assert f"comparison plot: {tmp_path / 'comparison.png'}" in text

    from matplotlib.image import imread

    assert imread(tmp_path / "comparison.png").ndim == 3


def test_compare_folder_without_results_exits_2(
    two_runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    capsys.readouterr()
    assert main(["compare", str(two_runs[0]), str(empty), "--no-plot"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and str(empty) in err[0] and "results.json" in err[0]
    assert "Traceback" not in captured.err
    assert main(["compare", str(tmp_path / "missing")]) == 2
    assert "no such run folder" in capsys.readouterr().err


def _fake_run(root: Path, name: str, seed: int, a_t: float, **config: Any) -> Path:
    folder = root / name
    folder.mkdir()
    cfg = {"strategy": "agem", "benchmark": "permuted_digits", "lr": 0.1, "seed": seed}
    cfg.update(config)
    cfg["out"] = str(folder)
    (folder / "config.json").write_text(json.dumps(cfg))
    results = {
        "A_T": a_t,
        "F_T": 0.1,
        "BWT": -0.1,
        "FWT": None,
        "LCA_10": 0.3,
        "train_seconds": 2.0 + seed,
        "peak_rss_bytes": 2**20 * 100,
    }
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def test_seeds_of_one_config_are_grouped_with_mean_and_std(tmp_path: Path) -> None:
    runs = [
        load_run(_fake_run(tmp_path, "s0", 0, 0.6)),
        load_run(_fake_run(tmp_path, "s1", 1, 0.8)),
        load_run(_fake_run(tmp_path, "other", 0, 0.5, lr=0.03)),
    ]
    rows = comparison_rows(runs)
    assert len(rows) == 2
    first, second = rows
    assert first["seeds"] == [0, 1]
    mean, std = first["metrics"]["A_T"]
    assert mean == pytest.approx(0.7) and std == pytest.approx(0.1414213, rel=1e-5)
    assert first["metrics"]["FWT"] == (None, None)
    assert first["metrics"]["peak_rss_mib"] == (pytest.approx(100.0), pytest.approx(0.0))
    assert first["label"] == "agem (lr=0.1)" and second["label"] == "agem (lr=0.03)"
    assert second["metrics"]["A_T"] == (pytest.approx(0.5), None)
    table = format_table(rows)
    assert "0.7000 ± 0.1414" in table and "0.5000" in table
    assert "2.5 ± 0.7" in table  # train seconds


def test_unreadable_results_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "results.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable results"):
        load_run(folder)
