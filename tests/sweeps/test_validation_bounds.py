"""Everything a sweep's runs would refuse is refused before any starts, and sizes are
bounded before any folder is made: devices this machine lacks, LCA curves too large for
memory, grids beyond the run limit (with progress while a large one is validated), and
option values of the wrong kind named by their real option."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
import torch

from agem.cli.main import main
from agem.sweeps import spec as spec_module
from agem.sweeps.spec import SpecError, parse_spec
from tests.helpers.runs import agem, one_line_error

BASE = """
[base]
benchmark = "permuted_digits"
n_experiences = 1
hidden_sizes = [8]
lca_beta = 2
"""


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def _sweep_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, *extra: str) -> str:
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    out = tmp_path / "out"
    line = _error(capsys, ["sweep", str(spec), "--out", str(out), *extra])
    assert not out.exists()  # nothing written
    return line


@pytest.mark.parametrize("device", ["cpü", "cuda:7"])
def test_a_device_the_machine_lacks_is_refused_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], device: str
) -> None:
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a CUDA device 7")
    text = BASE + f'[grid]\ndevice = ["cpu", "{device}"]\n'
    line = _sweep_error(tmp_path, capsys, text)
    assert "--device" in line and device in line


def test_a_huge_lca_beta_is_refused_before_a_run_folder_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    line = _error(
        capsys, ["run", "--lca-beta", "1000000000000", "--n-experiences", "1", "--out", str(out)]
    )
    assert "--lca-beta 1000000000000" in line and "memory" in line
    assert not out.exists()


def test_a_huge_lca_beta_in_a_sweep_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = BASE.replace("lca_beta = 2", "") + "[grid]\nlca_beta = [2, 1000000000000]\n"
    assert "--lca-beta 1000000000000" in _sweep_error(tmp_path, capsys, text)


def test_a_grid_beyond_the_run_limit_is_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agem.sweeps.spec import MAX_RUNS

    values = ", ".join(str(i) for i in range(300))
    text = (
        BASE
        + f"[grid]\nseed = [{values}]\nlog_every = [{', '.join(str(i + 1) for i in range(300))}]\n"
    )
    began = time.monotonic()
    line = _sweep_error(tmp_path, capsys, text)
    assert time.monotonic() - began < 30  # counted, not built
    assert "90000 runs" in line and f"limit of {MAX_RUNS}" in line and "--max-runs 90000" in line


def test_max_runs_sets_the_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = BASE + "[grid]\nseed = [0, 1, 2]\n"
    line = _sweep_error(tmp_path, capsys, text, "--max-runs", "2")
    assert "3 runs" in line and "--max-runs 3" in line
    assert len(parse_spec(text, max_runs=3).jobs) == 3


def test_validation_of_a_large_spec_shows_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spec_module, "_PROGRESS_SECONDS", 0.0)
    progress = io.StringIO()
    parse_spec(BASE + "[grid]\nseed = [0, 1, 2]\n", progress=progress)
    lines = progress.getvalue().splitlines()
    assert lines[-1] == "validating the spec: 3 of 3 runs checked"


@pytest.mark.slow
def test_a_sweep_prints_the_run_count_and_an_estimate_before_starting(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(BASE + "[grid]\nseed = [0, 1]\n")
    out = tmp_path / "out"
    first = agem("sweep", str(spec), "--out", str(out), "--threads", "1")
    assert first.returncode == 0, first.stderr
    head = first.stdout.splitlines()[0]
    assert head.startswith("2 runs to go, 1 at a time") and "estimate" in head
    (out / "seed-1" / "results.json").unlink()
    (out / "seed-1" / "config.json").unlink()
    again = agem("sweep", str(spec), "--out", str(out), "--threads", "1")
    assert again.returncode == 0, again.stderr
    assert "1 runs to go, 1 at a time: about " in again.stdout


def test_a_spec_with_nothing_varying_names_its_run_plainly() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(BASE + "[grid]\nlr = [-1.0]\n")
    assert str(err.value).startswith("the run: ") and "run run" not in str(err.value)


def test_a_negated_switch_given_a_word_names_the_real_option() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(BASE + 'download = "no"\n[grid]\nseed = [0]\n')
    message = str(err.value)
    assert "'download'" in message and "true or false" in message
    assert "--no-download" in message and "unknown option" not in message


def test_a_spec_nested_too_deeply_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "[grid]\nseed = " + "[" * 100_000 + "]" * 100_000 + "\n"
    assert "nested too deeply" in _sweep_error(tmp_path, capsys, text)


def test_max_runs_must_be_positive(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert "--max-runs" in _sweep_error(
        tmp_path, capsys, BASE + "[grid]\nseed=[0]\n", "--max-runs", "0"
    )


def test_a_huge_lca_beta_is_refused_by_agem_run_as_a_process(tmp_path: Path) -> None:
    proc = agem(
        "run", "--lca-beta", "1000000000000", "--n-experiences", "1", "--out", str(tmp_path / "r")
    )
    assert "--lca-beta" in one_line_error(proc)
    assert not (tmp_path / "r").exists()
