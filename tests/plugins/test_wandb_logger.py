"""WandBLogger: a real offline W&B run, read back from the `.wandb` file W&B writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import agem
from agem.plugins import EvaluationPlugin
from agem.reporting.plots import write_run_plots

wandb = pytest.importorskip("wandb", reason="needs pip install -e '.[wandb]'")

from tests.helpers.wandb_records import history  # noqa: E402


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
    rows, config, summary = history(run_file)
    assert config["lr"] == 0.1 and config["strategy_class"] == "AGEM"
    losses = [h for h in rows if "train/loss" in h]
    assert [h["train/iteration"] for h in losses] == [5, 10, 15, 20]  # 2 x 100 samples / 10
    assert all(h["train/loss"] > 0 for h in losses)
    a_t = [h for h in rows if "metrics/A_T" in h]
    assert [h["experience"] for h in a_t] == [1, 2]
    assert a_t[-1]["metrics/A_T"] == pytest.approx(results["A_T"])
    assert summary["A_T"] == pytest.approx(results["A_T"])
    assert any("lca/exp1" in h for h in rows)
    (table,) = [h["accuracy_matrix"] for h in rows if "accuracy_matrix" in h]
    assert table["_type"] == "table-file" and table["nrows"] == 2
    table_file = json.loads((run_file.parent / "files" / table["path"]).read_text())
    assert table_file["columns"] == ["after_experience", "exp0", "exp1"]
    assert table_file["data"][1][1:] == pytest.approx(results["accuracy_matrix"][1])
    images = {k: v for h in rows for k, v in h.items() if k.startswith("plots/")}
    assert {"plots/accuracy_matrix", "plots/lca"} <= set(images)
    for image in images.values():
        assert image["_type"] == "image-file"
        assert (run_file.parent / "files" / image["path"]).read_bytes()[:4] == b"\x89PNG"


def test_bad_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode must be"):
        agem.plugins.loggers.WandBLogger(mode="sometimes")


def _offline_settings(tmp_path: Path, **kwargs: Any) -> dict[str, Any]:
    """Start and finish an offline W&B run; the settings its run file records."""
    from tests.helpers.wandb_records import run_info

    logger = agem.plugins.loggers.WandBLogger(dir=tmp_path, mode="offline", **kwargs)
    logger.close()
    wandb.teardown()
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    return run_info(run_file)


def test_settings_come_from_the_wandb_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_PROJECT", "team-project")
    monkeypatch.setenv("WANDB_ENTITY", "team")
    monkeypatch.setenv("WANDB_RUN_GROUP", "ablation")
    monkeypatch.setenv("WANDB_TAGS", "pmnist, agem")
    monkeypatch.setenv("WANDB_NAME", "from-env")
    info = _offline_settings(tmp_path, default_name="folder-name")
    assert info["project"] == "team-project" and info["entity"] == "team"
    assert info["group"] == "ablation" and info["tags"] == ["pmnist", "agem"]
    assert info["name"] == "from-env"


def test_arguments_win_over_the_wandb_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_PROJECT", "team-project")
    monkeypatch.setenv("WANDB_RUN_GROUP", "ablation")
    monkeypatch.setenv("WANDB_TAGS", "pmnist")
    monkeypatch.delenv("WANDB_NAME", raising=False)
    logger_args = {"project": "mine", "group": "g1", "tags": ["t1", "t2"], "default_name": "run-a"}
    info = _offline_settings(tmp_path, **logger_args)
    assert (info["project"], info["group"], info["tags"]) == ("mine", "g1", ["t1", "t2"])
    assert info["name"] == "run-a"


def test_project_defaults_to_agem_without_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("WANDB_PROJECT", "WANDB_RUN_GROUP", "WANDB_TAGS", "WANDB_NAME", "WANDB_ENTITY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = agem.plugins.loggers.WandBLogger(dir=tmp_path, mode="offline", lazy=True)
    assert logger.settings["project"] == "agem" and logger.settings["group"] is None
    assert logger.describe() == "W&B project agem (offline)"
