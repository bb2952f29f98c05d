"""`agem run` with Weights & Biases for a team: flags and W&B's variables (flags win),
the loggers kept beside W&B, the run's first line, and the results artifact; read back
from the offline run file W&B writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agem.cli.main import main

wandb = pytest.importorskip("wandb", reason="needs pip install -e '.[wandb]'")

from tests.helpers.wandb_records import artifacts, history, run_info  # noqa: E402

FAST = ["--n-experiences", "2", "--train-subset", "100", "--threads", "1", "--log-every", "5"]


@pytest.fixture()
def team_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_PROJECT", "env-project")
    monkeypatch.setenv("WANDB_ENTITY", "env-team")
    monkeypatch.setenv("WANDB_RUN_GROUP", "env-group")
    monkeypatch.setenv("WANDB_TAGS", "env-tag")
    monkeypatch.delenv("WANDB_NAME", raising=False)


def _run_file(out: Path) -> Path:
    wandb.teardown()  # stops W&B's service process, which writes out the run file
    (run_file,) = out.glob("wandb/offline-run-*/run-*.wandb")
    return run_file


def test_flags_win_over_the_variables_and_the_rest_comes_from_them(
    tmp_path: Path, team_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run-a"
    argv = ["run", "--strategy", "naive", *FAST, "--logger", "+wandb", "--out", str(out)]
    argv += ["--wandb-project", "flag-project", "--wandb-tags", "seeds, pmnist"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[0] == (
        "logging to metrics.csv, TensorBoard events, W&B project flag-project "
        f"(entity env-team, group env-group, tags seeds,pmnist, offline) in {out}"
    )
    info = run_info(_run_file(out))
    assert info["project"] == "flag-project" and info["tags"] == ["seeds", "pmnist"]
    assert info["entity"] == "env-team" and info["group"] == "env-group"
    assert info["name"] == "run-a"
    # +wandb keeps the defaults
    assert (out / "metrics.csv").is_file() and list(out.glob("events.out.tfevents.*"))
    config = json.loads((out / "config.json").read_text())
    assert config["logger"] == "csv,tensorboard,wandb"
    assert config["wandb_tags"] == "seeds,pmnist" and config["wandb_group"] is None


def test_group_and_entity_flags_and_the_results_artifact(tmp_path: Path, team_env: None) -> None:
    out = tmp_path / "run-b"
    argv = ["run", "--strategy", "naive", *FAST, "--logger", "wandb", "--out", str(out)]
    argv += ["--wandb-group", "flag-group", "--wandb-entity", "flag-team"]
    assert main(argv) == 0
    run_file = _run_file(out)
    info = run_info(run_file)
    assert (info["project"], info["entity"]) == ("env-project", "flag-team")
    assert (info["group"], info["tags"]) == ("flag-group", ["env-tag"])
    # --logger wandb: metrics.csv always, TensorBoard not
    assert (out / "metrics.csv").is_file() and not list(out.glob("events.out.tfevents.*"))
    rows, config, _ = history(run_file)
    assert config["wandb_group"] == "flag-group" and config["strategy"] == "naive"
    assert any("eval/loss/mean" in row for row in rows)
    (artifact,) = [a for a in artifacts(run_file) if a.type == "run-results"]
    assert artifact.name == "run-b-results"
    paths = {entry.path for entry in artifact.manifest.contents}
    assert {"results.json", "config.json", "metrics.csv", "accuracy_matrix.png"} <= paths
    assert "checkpoint.pt" not in paths


def test_wandb_options_without_the_wandb_logger_warn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--strategy", "naive", *FAST, "--logger", "csv", "--wandb-group", "g"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "agem: warning: --wandb-group applies with --logger wandb (or +wandb) (ignored)" in err
    assert err.splitlines()[0].startswith("logging to metrics.csv in ")
