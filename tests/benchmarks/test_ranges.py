"""A range of a benchmark's experiences: parsing, renumbering, the same tasks as the whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from agem.benchmarks.ranges import parse_range, select_experiences
from agem.benchmarks.registry import get
from agem.cli.main import main


def test_parse_range() -> None:
    assert parse_range("3:20") == (3, 20)
    assert parse_range("0:3") == (0, 3)
    assert parse_range("3:") == (3, None)
    for bad in ("3", "a:b", "5:2", "-1:3", "3:3"):
        with pytest.raises(ValueError, match="START:STOP"):
            parse_range(bad)


def test_ranges_are_the_whole_benchmarks_experiences_renumbered() -> None:
    whole = get("permuted_digits").build(n_experiences=5, seed=3)
    head = select_experiences(whole, 0, 2)
    tail = select_experiences(whole, 2, None)
    middle = select_experiences(whole, 1, 4)
    assert (head.n_experiences, tail.n_experiences, middle.n_experiences) == (2, 3, 3)
    assert [e.current_experience for e in tail.train_stream] == [0, 1, 2]
    for part, offset in ((head, 0), (tail, 2), (middle, 1)):
        for k, exp in enumerate(part.test_stream):
            x, y, _ = exp.dataset.batch(slice(0, 20))
            x0, y0, _ = whole.test_stream[k + offset].dataset.batch(slice(0, 20))
            assert torch.equal(x, x0) and torch.equal(y, y0)
    with pytest.raises(ValueError, match="not within"):
        select_experiences(whole, 2, 7)


def test_agem_run_on_a_range_of_experiences(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", "--strategy", "naive", "--n-experiences", "4", "--experiences", "1:3"]
    args += ["--hidden-sizes", "16", "--threads", "1", "--lca-beta", "2", "--out", str(out)]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert len(results["accuracy_matrix"]) == 2 and len(results["accuracy_matrix"][0]) == 2
    assert json.loads((out / "config.json").read_text())["experiences"] == "1:3"
    assert main([*args[:-1], str(tmp_path / "bad"), "--experiences", "3:9"]) == 2
