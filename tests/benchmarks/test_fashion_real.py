"""Integration on the real Fashion-MNIST files (Debian's dataset-fashion-mnist; CI installs it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import agem.benchmarks as B
from agem.cli.main import main
from agem.data import locate

DEBIAN = Path("/usr/share/datasets/fashion-mnist")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DEBIAN.is_dir(), reason="apt-get install dataset-fashion-mnist"),
]


def test_found_without_download(tmp_path):
    assert locate("fashion-mnist", tmp_path / "empty") == DEBIAN


def test_permuted_fashion_mnist_real(tmp_path):
    bm = B.permuted_fashion_mnist(3, seed=0, root=tmp_path / "empty", download=False)
    assert bm.n_experiences == 3 and bm.n_classes == 10
    for tr, te in zip(bm.train_stream, bm.test_stream):
        assert len(tr) == 60_000 and len(te) == 10_000
        assert torch.equal(torch.bincount(tr.dataset.y), torch.full((10,), 6000))
        assert torch.equal(torch.bincount(te.dataset.y), torch.full((10,), 1000))
        assert tr.dataset.x.dtype == torch.uint8 and tr.dataset.x.shape == (60_000, 1, 28, 28)
    x0 = bm.test_stream[0].dataset.batch(slice(0, 100))[0]
    x1 = bm.test_stream[1].dataset.batch(slice(0, 100))[0]
    assert x0.shape == (100, 784) and not torch.equal(x0, x1)
    torch.testing.assert_close(x0.sort(1).values, x1.sort(1).values)  # every pixel kept
    # all experiences share one stored copy of the images
    assert len({e.dataset.x.data_ptr() for e in bm.train_stream}) == 1
    sub = B.permuted_fashion_mnist(2, seed=0, root=tmp_path / "empty", train_subset=1000)
    assert len(sub.train_stream[1]) == 1000 and len(sub.test_stream[1]) == 10_000


def test_split_fashion_mnist_real(tmp_path):
    bm = B.split_fashion_mnist(seed=0, root=tmp_path / "empty", download=False, task_labels=True)
    assert bm.n_experiences == 5
    assert sum(len(e) for e in bm.train_stream) == 60_000
    assert sum(len(e) for e in bm.test_stream) == 10_000
    for tr, te in zip(bm.train_stream, bm.test_stream):
        assert torch.equal(torch.bincount(tr.dataset.y), torch.full((2,), 6000))
        assert torch.equal(torch.bincount(te.dataset.y), torch.full((2,), 1000))
    classes = [c for g in bm.info["classes_per_experience"] for c in g]
    assert sorted(classes) == list(range(10))


def test_agem_run_on_real_fashion_mnist(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--benchmark",
            "permuted_fashion_mnist",
            "--n-experiences",
            "2",
            "--data-dir",
            str(DEBIAN),
            "--no-download",
            "--batch-size",
            "500",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    matrix = results["accuracy_matrix"]
    assert len(matrix) == 2 and len(matrix[0]) == 2
    assert matrix[0][0] > 0.5  # a 784-256-256-10 MLP learns one epoch of Fashion-MNIST
