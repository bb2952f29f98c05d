"""The run folder through the command line: refusing, overwriting, status, config replay,
divergence, and errors of the environment (one line, exit 2, no temporary files)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agem.cli.main import main
from agem.data import write_idx
from agem.reporting.compare import load_run, run_status
from agem.runs.folder import RunFolder
from tests.helpers.runs import TINY, agem, one_line_error, results, temp_files

FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
SMALL = ["--n-experiences", "2", "--hidden-sizes", "8", "--threads", "1", "--lca-beta", "2"]


def _error(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 2) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


# ---- lifecycle --------------------------------------------------------------------------
def test_a_non_empty_out_is_refused_and_overwrite_clears_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["run", *SMALL, "--out", str(out)]) == 0
    capsys.readouterr()
    first = results(out)
    stale = out / "events.out.tfevents.1.old.1.0"
    stale.write_bytes(b"an earlier run's events")
    (out / "notes").mkdir()
    line = _error(capsys, ["run", *SMALL, "--seed", "1", "--out", str(out)])
    assert "not empty" in line and "--overwrite" in line and "--resume" in line
    assert results(out) == first  # untouched

    assert main(["run", *SMALL, "--seed", "1", "--out", str(out), "--overwrite"]) == 0
    assert not stale.exists() and not (out / "notes").exists()
    events = [p for p in out.iterdir() if p.name.startswith("events.out.tfevents")]
    assert len(events) == 1
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 1 and results(out)["seed"] == 1
    assert results(out)["status"] == "complete"


def test_out_that_is_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert "not a folder" in _error(capsys, ["run", *SMALL, "--out", str(target)])


def test_config_json_records_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", *SMALL, "--out", str(out)]) == 0
    env = json.loads((out / "config.json").read_text())["environment"]
    import platform

    import torch

    import agem

    assert env["agem"] == agem.__version__ and env["torch"] == torch.__version__
    assert env["python"] == platform.python_version()
    assert env["device"] == "cpu" and env["threads"] == 1 and env["data_dir"] is None


@pytest.mark.slow
def test_config_replay_reproduces_the_accuracy_matrix(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    argv = [*TINY, "--strategy", "gem", "--optimizer", "adamw", "--lr", "0.005"]
    assert main(["run", *argv, "--weight-decay", "0.01", "--out", str(first)]) == 0
    assert main(["run", "--config", str(first / "config.json"), "--out", str(second)]) == 0
    a, b = results(first), results(second)
    assert a["accuracy_matrix"] == b["accuracy_matrix"] and a["A_T"] == b["A_T"]
    drop = ("environment",)
    config_a = {
        k: v for k, v in json.loads((first / "config.json").read_text()).items() if k not in drop
    }
    config_b = {
        k: v for k, v in json.loads((second / "config.json").read_text()).items() if k not in drop
    }
    assert config_a == config_b and config_a["optimizer"] == "adamw"


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_optimizers(optimizer: str, tmp_path: Path) -> None:
    out = tmp_path / optimizer
    extra = ["--momentum", "0.9"] if optimizer == "sgd" else ["--weight-decay", "0.001"]
    argv = ["run", *SMALL, "--optimizer", optimizer, "--lr", "0.01", *extra, "--out", str(out)]
    assert main(argv) == 0
    done = results(out)
    assert done["status"] == "complete" and done["A_T"] > 0.3


def test_divergence_stops_the_run_with_exit_3(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = agem("run", *TINY, "--lr", "1e6", "--out", str(out))
    line = one_line_error(proc, 3, after_training=True)
    assert "diverged" in line and "experience 0, iteration 2" in line
    done = results(out)
    assert done["status"] == "diverged"
    assert done["diverged"] == {"experience": 0, "iteration": 2}
    assert temp_files(out) == []


# ---- environment errors ---------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Path:
    """A 96 KiB tmpfs (a disk that fills up), where this machine lets us mount one."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_disk_full(small_disk: Path) -> None:
    out = small_disk / "run"
    proc = agem("run", *TINY, "--patterns-per-experience", "250", "--out", str(out))
    line = one_line_error(proc, 2, after_training=True)
    assert "No space left on device" in line
    assert results(out)["status"] == "failed"
    assert temp_files(out) == []


def test_a_folder_where_a_file_belongs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["run", *SMALL, "--out", str(out)]) == 0
    capsys.readouterr()
    (out / "results.json").unlink()
    (out / "results.json").mkdir()
    (out / "checkpoint.pt").unlink()
    assert "results.json" in _error(capsys, ["run", "--resume", str(out)])
    assert temp_files(out) == []


@pytest.mark.slow
def test_read_only_out_as_another_user(tmp_path: Path) -> None:
    parent = tmp_path / "read-only"
    parent.mkdir(mode=0o555)
    tmp_path.chmod(0o755)
    proc = agem("run", *SMALL, "--out", str(parent / "run"), as_nobody=True)
    assert "Permission denied" in one_line_error(proc)
    assert list(parent.iterdir()) == []


def _fashion_copy(folder: Path) -> Path:
    if not all((FASHION / n).is_file() for n in FASHION_FILES):
        pytest.skip("Fashion-MNIST files are not installed")
    folder.mkdir(parents=True)
    for name in FASHION_FILES:
        shutil.copy(FASHION / name, folder / name)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("what", ["file", "folder"])
def test_unreadable_data_as_another_user(what: str, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    data = _fashion_copy(tmp_path / "data")
    (data / FASHION_FILES[1] if what == "file" else data).chmod(0)
    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    argv = ["run", "--benchmark", "permuted_fashion_mnist", "--train-subset", "100"]
    proc = agem(*argv, *SMALL, "--data-dir", str(data), "--out", str(out / "run"), as_nobody=True)
    assert "Permission denied" in one_line_error(proc)
    assert not (out / "run").exists()


def test_data_dir_without_the_dataset_names_what_it_looked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--benchmark", "permuted_fashion_mnist", "--no-download", *SMALL]
    line = _error(capsys, [*argv, "--data-dir", str(tmp_path), "--out", str(tmp_path / "r")])
    assert "Fashion-MNIST not found" in line and "train-images-idx3-ubyte.gz" in line
    assert f"Looked in: {tmp_path}/fashion-mnist" in line
    assert "/usr/share/datasets" not in line.split("To get it")[0]  # no system copy searched


def test_the_data_folder_read_is_recorded(tmp_path: Path) -> None:
    data = _fashion_copy(tmp_path / "data")
    out = tmp_path / "run"
    argv = ["run", "--benchmark", "permuted_fashion_mnist", "--train-subset", "200", *SMALL]
    assert main([*argv, "--data-dir", str(data), "--out", str(out)]) == 0
    env = json.loads((out / "config.json").read_text())["environment"]
    assert env["data_dir"] == str(data.resolve())


def test_zero_sample_idx_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "t10k"):
        write_idx(data / f"{split}-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8))
        write_idx(data / f"{split}-labels-idx1-ubyte", np.zeros((0,), np.uint8))
    argv = ["run", "--benchmark", "permuted_fashion_mnist", *SMALL, "--data-dir", str(data)]
    assert "holds no samples" in _error(capsys, [*argv, "--out", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()


def test_a_failed_download_leaves_no_empty_folders(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    argv = ["run", "--benchmark", "permuted_mnist", *SMALL, "--data-dir", str(data)]
    # a proxy that refuses connections: every mirror fails at once, without the network
    proc = agem(
        *argv,
        "--out",
        str(tmp_path / "r"),
        http_proxy="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
    )
    assert "Download failed" in one_line_error(proc)
    assert not (tmp_path / "new").exists() and not (tmp_path / "r").exists()


@pytest.mark.parametrize("device", ["mps", "xpu", "meta", "cuda:99", "tpu"])
def test_devices_this_machine_lacks(
    device: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    if device.startswith("cuda") and torch.cuda.device_count() > 99:
        pytest.skip("this machine has that many GPUs")
    line = _error(capsys, ["run", *SMALL, "--device", device, "--out", str(tmp_path / "r")])
    assert "--device" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--strategy", "replay", "--mem-size", "1e12"], "--mem-size"),
        (["--hidden-sizes", "1000000,1000000"], "--hidden-sizes"),
        (["--n-experiences", "100000"], "--n-experiences"),
    ],
)
def test_sizes_that_cannot_fit_fail_fast(
    argv: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _error(capsys, ["run", "--threads", "1", *argv, "--out", str(tmp_path / "r")])
    assert named in line
    assert not (tmp_path / "r").exists()


def test_gzip_copy_is_read(tmp_path: Path) -> None:
    """Sanity check of the copied data (the tests above rely on it being real)."""
    data = _fashion_copy(tmp_path / "data")
    with gzip.open(data / FASHION_FILES[1]) as f:
        assert f.read(4) == b"\x00\x00\x08\x01"
    assert os.access(data / FASHION_FILES[0], os.R_OK)


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ({"status": "interrupted", "total_seconds": 1.0}, "interrupted"),
        ({"A_T": 0.5, "total_seconds": 3.0}, "complete"),  # before statuses: finished
        ({"A_T": 0.5}, "running"),  # before statuses: no total time, not finished
    ],
)
def test_one_status_rule_for_every_reader(
    tmp_path: Path, results: dict[str, Any], expected: str
) -> None:
    """The run folder, `agem compare` and sweeps read a results.json's status alike."""
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert RunFolder(tmp_path).status() == expected
    assert load_run(tmp_path).status == expected == run_status(results)
    assert run_status(None) == "not started" and RunFolder(tmp_path / "none").status() is None
