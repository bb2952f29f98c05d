"""`agem run --fleet K` writes K normal run folders through the run layer: refused when
OUT is not empty, statuses and checkpoints per run, each run resumable on its own."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch

from agem.cli.main import main
from tests.helpers.runs import TINY, agem, one_line_error, results, start, wait_for

FLEET = ["--strategy", "agem", "--fleet", "2", "--seed", "3"]


@pytest.mark.slow
def test_fleet_refuses_a_non_empty_folder_and_overwrites_on_request(tmp_path: Path) -> None:
    out = tmp_path / "fleet"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = agem("run", *TINY, *FLEET, "--n-experiences", "1", "--out", str(out))
    assert "not empty" in one_line_error(proc)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    args = ["run", *TINY, *FLEET, "--n-experiences", "1", "--lca-beta", "2"]
    assert main([*args, "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "seed3",
        "seed4",
    ]
    for s in (3, 4):
        done = results(out / f"seed{s}")
        assert done["status"] == "complete" and done["fleet_size"] == 2
        state = torch.load(out / f"seed{s}" / "checkpoint.pt", weights_only=True)
        for tensor in state["strategy"]["model"].values():  # its own weights, not the fleet's
            assert tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()


CAPTURED = ("--device", "cuda", "--cuda-graph", "--optimizer", "adam", "--lr", "0.001")


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param((), id="cpu"),
        pytest.param(
            CAPTURED,
            id="cuda-graph-adam",
            marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
        ),
    ],
)
@pytest.mark.slow
def test_interrupted_fleet_resumes_run_by_run(tmp_path: Path, extra: tuple[str, ...]) -> None:
    out = tmp_path / "fleet"
    proc = start(
        "run",
        *TINY,
        *FLEET,
        *extra,
        "--out",
        str(out),
        AGEM_TEST_PAUSE_BEFORE_RENAME="checkpoint.pt:0.5",
    )
    wait_for(lambda: (out / "seed3" / "checkpoint.pt").exists())
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    line = one_line_error(proc, 143, after_training=True)
    assert f"agem run --resume {out}/seed<s>" in line
    for s in (3, 4):
        done = results(out / f"seed{s}")
        assert done["status"] == "interrupted" and 1 <= done["experiences_done"] < 4
    whole = agem("run", "--resume", str(out))
    assert "resume each run with" in one_line_error(whole)

    resumed = agem("run", "--resume", str(out / "seed4"))
    assert resumed.returncode == 0, resumed.stderr
    a = results(out / "seed4")
    assert a["status"] == "complete" and a["experiences_done"] == 4
    config = json.loads((out / "seed4" / "config.json").read_text())
    assert config["fleet"] == 1 and config["seed"] == 4
    if extra:  # captured: the fleet's samples are not the single run's draws
        assert all(row[i] > 0.5 for i, row in enumerate(a["accuracy_matrix"]))
        return
    alone = tmp_path / "alone"
    assert main(["run", *TINY, "--strategy", "agem", "--seed", "4", "--out", str(alone)]) == 0
    b = results(alone)
    diff = max(
        abs(x - y)
        for ra, rb in zip(a["accuracy_matrix"], b["accuracy_matrix"], strict=True)
        for x, y in zip(ra, rb, strict=True)
    )
    assert diff <= 0.02
