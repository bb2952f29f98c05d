"""WandBLogger: a real offline W&B run, read back from the `.wandb` file W&B writes."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import agem
from agem.plugins import EvaluationPlugin
from agem.reporting.plots import write_run_plots

wandb = pytest.importorskip("wandb", reason="needs pip install 'agem[wandb]'")

_BLOCK = 32768  # the .wandb file is a LevelDB-style log of wandb's protobuf records


def read_records(path: Path) -> Iterator[Any]:
    """Every record of a `.wandb` file, parsed with wandb's own protobuf schema."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # block trailer
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:  # zero padding up to the block end
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _items(items: Any) -> dict[str, Any]:
    """History / summary / config items as a dict; nested keys (a table's fields) nested."""
    out: dict[str, Any] = {}
    for item in items:
        *parents, leaf = [item.key] if item.key else list(item.nested_key)
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = json.loads(item.value_json)
    return out


@pytest.fixture()
def offline_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Path]:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    bm = agem.benchmarks.permuted_digits(n_experiences=2, seed=0, train_subset=100)
    torch.manual_seed(0)
    model = agem.models.MLP(input_size=64, hidden_sizes=(16,), num_classes=10)
    logger = agem.plugins.loggers.WandBLogger(
        project="agem-test", name="digits", config={"lr": 0.1, "seed": 0}, dir=tmp_path, every=5
    )
    evaluator = EvaluationPlugin(
        eval_stream=bm.test_stream, eval_every="experience", lca_beta=2, lca_test_size=50
    )
    strategy = agem.AGEM(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        patterns_per_experience=20,
        sample_size=10,
        train_mb_size=10,
        eval_mb_size=100,
        seed=0,
        plugins=[logger],
        evaluator=evaluator,
    )
    strategy.eval(bm.test_stream)
    strategy.train(bm.train_stream)
    results = evaluator.summary()
    logger.log_plots(write_run_plots(results, tmp_path / "plots"))
    logger.close()
    wandb.teardown()  # stops W&B's service process, which writes out the run file
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    return results, run_file


def test_offline_run_holds_config_losses_metrics_table_and_plots(offline_run) -> None:
    results, run_file = offline_run
    history: list[dict[str, Any]] = []
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    for record in read_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append(_items(record.history.item))
        elif kind == "run":
            config.update(_items(record.run.config.update))
        elif kind == "config":
            config.update(_items(record.config.update))
        elif kind == "summary":
            summary.update(_items(record.summary.update))
    assert config["lr"] == 0.1 and config["strategy_class"] == "AGEM"
    losses = [h for h in history if "train/loss" in h]
    assert [h["train/iteration"] for h in losses] == [5, 10, 15, 20]  # 2 x 100 samples / 10
    assert all(h["train/loss"] > 0 for h in losses)
    a_t = [h for h in history if "metrics/A_T" in h]
    assert [h["experience"] for h in a_t] == [1, 2]
    assert a_t[-1]["metrics/A_T"] == pytest.approx(results["A_T"])
    assert summary["A_T"] == pytest.approx(results["A_T"])
    assert any("lca/exp1" in h for h in history)
    (table,) = [h["accuracy_matrix"] for h in history if "accuracy_matrix" in h]
    assert table["_type"] == "table-file" and table["nrows"] == 2
    table_file = json.loads((run_file.parent / "files" / table["path"]).read_text())
    assert table_file["columns"] == ["after_experience", "exp0", "exp1"]
    assert table_file["data"][1][1:] == pytest.approx(results["accuracy_matrix"][1])
    images = {k: v for h in history for k, v in h.items() if k.startswith("plots/")}
    assert {"plots/accuracy_matrix", "plots/lca"} <= set(images)
    for image in images.values():
        assert image["_type"] == "image-file"
        assert (run_file.parent / "files" / image["path"]).read_bytes()[:4] == b"\x89PNG"


def test_bad_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode must be"):
        agem.plugins.loggers.WandBLogger(mode="sometimes")
