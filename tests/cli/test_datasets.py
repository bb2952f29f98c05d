"""`agem datasets`, and `agem run` on the embedded default and on dataset files."""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.request

import numpy as np
import pytest
import torch

from agem.benchmarks.registry import BENCHMARKS
from agem.cli.main import main
from agem.data import DATASETS, write_idx

IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def write_mnist(folder, n_train=30, n_test=20):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        (np.arange(n_train) % 10).astype(np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        (np.arange(n_test) % 10).astype(np.uint8),
    )
    for name, a in zip(IDX_NAMES, arrays):
        write_idx(folder / name, a)


@pytest.fixture
def no_system_dirs(monkeypatch):
    for key in DATASETS:
        monkeypatch.setitem(DATASETS, key, dataclasses.replace(DATASETS[key], system_dirs=()))


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to use the network fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network used")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_datasets_lists_every_builder_and_where_files_are(tmp_path, capsys, no_system_dirs):
    write_mnist(tmp_path / "mnist")
    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line and line[0] != " "}
    for name in BENCHMARKS:
        assert name in lines, name
    assert f"found: {tmp_path / 'mnist'}" in lines["permuted_mnist"]
    assert f"found: {tmp_path / 'mnist'}" in lines["rotated_mnist"]
    assert "missing" in lines["split_cifar10"] and "missing" in lines["permuted_fashion_mnist"]
    assert "offline" in lines["permuted_digits"]
    assert "apt-get install dataset-fashion-mnist" in out
    assert "cifar-100-python.tar.gz" in out and str(tmp_path / "cifar100") in out
    assert f"data root: {tmp_path}" in out


def test_datasets_reports_the_debian_folder(tmp_path, capsys, monkeypatch):
    system = tmp_path / "usr-share-datasets-fashion-mnist"
    write_mnist(system)
    source = dataclasses.replace(DATASETS["fashion-mnist"], system_dirs=(str(system),))
    monkeypatch.setitem(DATASETS, "fashion-mnist", source)
    monkeypatch.setenv("AGEM_DATA", str(tmp_path / "empty"))
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("split_fashion_mnist"))
    assert f"found: {system}" in line
    assert f"system folders, searched after it: {system}" in out


def test_datasets_names_the_system_folders_it_looked_in(tmp_path, capsys, monkeypatch):
    """A dataset missing everywhere lists the system folders among those searched; with
    --data-dir only that folder is searched, as `agem run --data-dir` does."""
    system = tmp_path / "usr-share-datasets-fashion-mnist"
    source = dataclasses.replace(DATASETS["fashion-mnist"], system_dirs=(str(system),))
    monkeypatch.setitem(DATASETS, "fashion-mnist", source)
    monkeypatch.setenv("AGEM_DATA", str(tmp_path / "root"))
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    looked = next(
        x
        for x in out.split("Fashion-MNIST (fashion-mnist) is missing")[1].splitlines()
        if "looked in" in x
    )
    assert str(system) in looked and str(tmp_path / "root" / "fashion-mnist") in looked
    write_mnist(system)
    assert main(["datasets", "--data-dir", str(tmp_path / "alone")]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("split_fashion_mnist"))
    assert "missing" in line and "system folders are not searched" in out


def test_run_without_benchmark_is_offline(tmp_path, capsys, offline, threads):
    """`agem run` with no --benchmark builds the embedded digits without network (short)."""
    out = tmp_path / "run"
    assert main(["run", "--n-experiences", "2", "--out", str(out), "--threads", "1"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["benchmark"] == "permuted_digits"
    assert len(json.loads((out / "results.json").read_text())["accuracy_matrix"]) == 2


@pytest.mark.slow
def test_run_without_benchmark_uses_the_offline_default(tmp_path, capsys, offline, threads):
    """The whole default `agem run`: embedded digits, no network, under 60 s."""
    start = time.perf_counter()
    code = main(["run", "--out", str(tmp_path / "run"), "--threads", "1"])
    seconds = time.perf_counter() - start
    assert code == 0, capsys.readouterr().err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert config["benchmark"] == "permuted_digits" and config["n_experiences"] == 5
    assert len(results["accuracy_matrix"]) == 5
    assert results["accuracy_matrix"][0][0] > 0.5
    assert seconds < 60, f"default run took {seconds:.1f} s"


def test_run_on_dataset_files(tmp_path, capsys, no_system_dirs, offline, threads):
    write_mnist(tmp_path / "data" / "fashion-mnist")
    out = tmp_path / "run"
    args = ["run", "--benchmark", "permuted_fashion_mnist", "--n-experiences", "2"]
    args += ["--data-dir", str(tmp_path / "data"), "--out", str(out), "--threads", "1"]
    assert main(args) == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["data_dir"] == str(tmp_path / "data")
    assert len(json.loads((out / "results.json").read_text())["accuracy_matrix"]) == 2


def test_run_with_files_given_directly_as_data_dir(tmp_path, capsys, no_system_dirs, offline):
    write_mnist(tmp_path / "flat")
    args = ["run", "--benchmark", "split_mnist", "--task-labels", "--data-dir"]
    args += [str(tmp_path / "flat"), "--out", str(tmp_path / "run"), "--threads", "1"]
    assert main(args) == 0, capsys.readouterr().err


def test_run_with_missing_files_is_one_clear_line(tmp_path, capsys, no_system_dirs):
    args = ["run", "--benchmark", "split_cifar10", "--no-download", "--data-dir", str(tmp_path)]
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith("agem: error: CIFAR-10 not found")
    assert "cifar-10-python.tar.gz" in err and "--no-download" in err
