"""TensorBoardLogger writes a hyperparameters summary with the final metrics into the run's
own event file; read back with TensorBoard's event reader and hparams protobufs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import agem
from agem.plugins import EvaluationPlugin
from agem.plugins.loggers import TensorBoardLogger
from agem.plugins.loggers.tensorboard_logger import flat_hparams


def test_hparams_and_final_metrics_in_the_event_file(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    bm = agem.benchmarks.permuted_digits(n_experiences=2, seed=0, train_subset=100)
    torch.manual_seed(0)
    model = agem.models.MLP(input_size=64, hidden_sizes=(16,), num_classes=10)
    config = {"strategy": "naive", "lr": 0.1, "hidden_sizes": [16], "train_subset": None}
    logger = TensorBoardLogger(tmp_path, every=5, hparams=config)
    evaluator = EvaluationPlugin(eval_stream=bm.test_stream, eval_every="experience", lca_beta=2)
    strategy = agem.Naive(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=10,
        seed=0,
        plugins=[logger],
        evaluator=evaluator,
    )
    strategy.train(bm.train_stream)
    logger.close()
    logger.close()  # idempotent: one summary only

    (event_file,) = tmp_path.glob("events.out.tfevents.*")  # the run's own file, no subfolder
    acc = EventAccumulator(str(event_file))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    metric_tags = {m.name.tag for m in experiment.experiment.metric_infos}
    assert {"metrics/A_T", "metrics/F_T", "metrics/BWT", "metrics/LCA_2"} <= metric_tags
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    assert start.hparams["strategy"].string_value == "naive"
    assert start.hparams["lr"].number_value == pytest.approx(0.1)
    assert start.hparams["hidden_sizes"].string_value == "16"
    assert start.hparams["train_subset"].string_value == "none"
    final = acc.Scalars("metrics/A_T")[-1]
    assert final.step == 2 and final.value == pytest.approx(evaluator.summary()["A_T"], abs=1e-6)


def test_flat_hparams_flattens_nested_options() -> None:
    flat = flat_hparams({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": True})
    assert flat == {"a/b": 1, "a/c": "1,2", "d": "none", "e": True}
