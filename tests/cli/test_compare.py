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
        "status": "complete",
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


def _status_run(root: Path, name: str, seed: int, a_t: float, status: str | None) -> Path:
    folder = _fake_run(root, name, seed, a_t)
    results = json.loads((folder / "results.json").read_text())
    if status is not None:
        results["status"] = status
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def test_only_complete_runs_are_compared_and_others_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done = _status_run(tmp_path, "done", 0, 0.6, "complete")
    other = _status_run(tmp_path, "other", 1, 0.8, "complete")
    killed = _status_run(tmp_path, "killed", 2, 0.1, "running")
    stopped = _status_run(tmp_path, "stopped", 3, 0.1, "interrupted")
    args = ["compare", str(done), str(done), str(tmp_path / "." / "done"), str(other)]
    assert main([*args, str(killed), str(stopped), "--no-plot"]) == 0
    out = capsys.readouterr().out
    table, _, rest = out.partition("incomplete runs")
    row = table.splitlines()[2].split()
    assert row[:3] == ["agem", "permuted_digits", "2"]  # done counted once, plus other
    assert "0.7000 ± 0.1414" in table and len(table.strip().splitlines()) == 3  # one row
    assert f"{killed}  running" in rest and f"{stopped}  interrupted" in rest
    assert main(["compare", str(killed), "--no-plot"]) == 1
    assert "no complete runs" in capsys.readouterr().out


def test_two_folders_with_one_seed_count_one_seed(tmp_path: Path) -> None:
    runs = [load_run(_fake_run(tmp_path, n, 0, a)) for n, a in (("a", 0.5), ("b", 0.7))]
    rows = comparison_rows(runs)
    assert len(rows) == 1 and rows[0]["seeds"] == [0]


def test_compare_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folders = [str(_fake_run(tmp_path, f"s{s}", s, 0.6 + 0.2 * s)) for s in (0, 1)]
    assert main(["compare", *folders, "--format", "md", "--no-plot"]) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0].startswith("| strategy | benchmark | seeds | A_T |") and md[1].startswith("|---")
    assert "0.7000 ± 0.1414" in md[2]
    assert main(["compare", *folders, "--format", "csv", "--no-plot"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("strategy,benchmark,seeds,A_T_mean,A_T_std,")
    cells = lines[1].split(",")
    assert float(cells[3]) == pytest.approx(0.7) and float(cells[4]) == pytest.approx(0.1414, 1e-3)
    assert main(["compare", *folders, "--format", "latex", "--no-plot"]) == 0
    tex = capsys.readouterr().out
    assert tex.startswith("\\begin{tabular}") and "\\toprule" in tex
    assert "0.7000 $\\pm$ 0.1414" in tex and "permuted\\_digits" in tex


def test_compare_reads_a_sweep_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.toml").write_text("[grid]\nseed = [0, 1, 2]\n")
    (sweep / "logs").mkdir()
    _status_run(sweep, "seed-0", 0, 0.6, "complete")
    _status_run(sweep, "seed-1", 1, 0.8, "complete")
    unstarted = sweep / "seed-2"
    unstarted.mkdir()
    (unstarted / "config.json").write_text(json.dumps({"strategy": "agem", "seed": 2}))
    assert main(["compare", str(sweep), str(sweep / "seed-0"), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "0.7000 ± 0.1414" in out
    assert f"{unstarted}  not started" in out
    assert main(["compare", str(sweep)]) == 0  # the figure goes into the sweep folder
    assert (sweep / "comparison.png").is_file()


def test_labels_name_only_what_differs_within_a_strategy(tmp_path: Path) -> None:
    runs = [
        load_run(_fake_run(tmp_path, "replay", 0, 0.6, strategy="replay", mem_size=500)),
        load_run(_fake_run(tmp_path, "agem", 0, 0.7, mem_size=1000)),
        load_run(_fake_run(tmp_path, "agem-lr", 0, 0.7, mem_size=1000, lr=0.03)),
    ]
    labels = [row["label"] for row in comparison_rows(runs)]
    assert labels == ["replay", "agem (lr=0.1)", "agem (lr=0.03)"]


def test_compare_writes_its_figure_beside_the_runs_not_in_the_current_folder(
    two_runs: list[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    beside = two_runs[0].parent / "comparison.png"
    beside.unlink(missing_ok=True)
    capsys.readouterr()
    assert main(["compare", *map(str, two_runs)]) == 0
    assert f"comparison plot: {beside}" in capsys.readouterr().out
    assert beside.is_file() and not list(elsewhere.iterdir())
    beside.unlink()


def test_compare_writes_pdf_and_svg_on_request(
    two_runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import xml.etree.ElementTree as ET

    args = ["compare", *map(str, two_runs), "--out", str(tmp_path), "--plot-format", "pdf,svg"]
    assert main(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comparison.pdf", "comparison.svg"]
    assert (tmp_path / "comparison.pdf").read_bytes().startswith(b"%PDF-")
    assert ET.parse(tmp_path / "comparison.svg").getroot().tag.endswith("svg")
    capsys.readouterr()
    assert main([*args[:-1], "jpg"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--plot-format" in err[0] and "png, pdf, svg" in err[0]
