"""`WandBLogger`: a run in Weights & Biases (the optional `wandb` package, `agem[wandb]`)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agem.extras import require
from agem.plugins.loggers.base import Logger, LossPoint, evaluation_scalars, experiences_trained
from agem.plugins.loggers.csv_logger import metric_names

if TYPE_CHECKING:
    from agem.core.template import BaseTemplate


#: where each `wandb.init` setting is read from when it is not given
ENVIRONMENT = {
    "project": "WANDB_PROJECT",
    "entity": "WANDB_ENTITY",
    "group": "WANDB_RUN_GROUP",
    "tags": "WANDB_TAGS",
    "name": "WANDB_NAME",
    "notes": "WANDB_NOTES",
}
DEFAULT_PROJECT = "agem"
#: files of a run folder that its results artifact holds (with the PNG plots)
ARTIFACT_FILES = ("config.json", "metrics.csv")


def from_environment(key: str, value: Any) -> Any:
    """`value` when given (not None or empty), else the W&B environment variable of `key`
    (`ENVIRONMENT`; tags split at commas), else None."""
    if value not in (None, "", [], ()):
        return value
    text = os.environ.get(ENVIRONMENT[key], "").strip()
    if not text:
        return None
    if key == "tags":
        return [t.strip() for t in text.split(",") if t.strip()] or None
    return text


def artifact_name(text: str) -> str:
    """`text` as a W&B artifact name: letters, digits, '-', '_' and '.' only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "run"


def accuracy_table_rows(matrix: list[list[float | None]]) -> list[list[Any]]:
    """Rows of the accuracy matrix table: [after_experience, acc on exp 0, exp 1, ...]."""
    return [[i, *row] for i, row in enumerate(matrix)]


class WandBLogger(Logger):
    """Log a run to Weights & Biases.

    What is logged (each key with its own step axis, declared with `define_metric`):

    - the run config: `config` as given, plus the strategy class and its minibatch size,
      epochs and device at the start of training;
    - `train/loss` every `every` iterations (mean of the window) against `train/iteration`,
      and `train/epoch_loss`, `train/epoch_accuracy` per epoch;
    - `eval/accuracy/exp{j}`, `eval/loss/exp{j}`, `eval/accuracy/mean`, `eval/loss/mean`
      at each evaluation, and `metrics/A_T`, `metrics/F_T`, ..., against `experience`
      (experiences trained: 0 for the untrained model); the latest metrics are also the
      run summary;
    - `lca/exp{k}` against `lca/batch`, `time/train_seconds` against `experience`;
    - `accuracy_matrix`: a `wandb.Table` (one row per trained experience) at the end of
      each `train()` call;
    - PNG plots, when the caller hands them over with `log_plots(paths)`, and a run
      folder's results as an artifact with `log_run_folder(folder, results)`.

    `project`, `entity`, `group`, `tags`, `name` and `notes` given here win; each one not
    given is read from W&B's own variable (`WANDB_PROJECT`, `WANDB_ENTITY`,
    `WANDB_RUN_GROUP`, `WANDB_TAGS`, `WANDB_NAME`, `WANDB_NOTES`), else the project is
    "agem" and the name `default_name` (or W&B's own). The run is created here with
    `wandb.init`, or at the first hook with `lazy=True` (so that `dir` need not exist
    yet); `mode` "offline" (or `WANDB_MODE=offline`) writes it under `dir` only, with no
    network. `close()` finishes the run. Without the wandb package this raises
    `agem.extras.MissingExtraError` naming ``pip install -e '.[wandb]'``.
    """

    def __init__(
        self,
        *,
        project: str | None = None,
        entity: str | None = None,
        name: str | None = None,
        default_name: str | None = None,
        group: str | None = None,
        tags: Iterable[str] | None = None,
        notes: str | None = None,
        config: Mapping[str, Any] | None = None,
        dir: str | Path | None = None,
        mode: str | None = None,
        every: int = 10,
        flush_every: int = 100,
        lazy: bool = False,
    ) -> None:
        super().__init__(every=every, flush_every=flush_every)
        if mode not in (None, "online", "offline", "disabled"):
            raise ValueError(f"mode must be online, offline or disabled, got {mode!r}")
        self.wandb = require("wandb")
        self._init_args: dict[str, Any] = {
            "project": from_environment("project", project) or DEFAULT_PROJECT,
            "entity": from_environment("entity", entity),
            "name": from_environment("name", name) or default_name,
            "group": from_environment("group", group),
            "tags": from_environment("tags", None if tags is None else list(tags)),
            "notes": from_environment("notes", notes),
            "config": dict(config or {}),
            "dir": None if dir is None else str(dir),
            "mode": mode,
        }
        self._run: Any = None
        self._closed = False
        if not lazy:
            self.start()

    def start(self) -> Any:
        """Create the W&B run now (done on first use otherwise); return it."""
        if self._run is None:
            if self._init_args["dir"] is not None:
                Path(self._init_args["dir"]).mkdir(parents=True, exist_ok=True)
            run = self.wandb.init(**self._init_args)
            for axis in ("train/iteration", "experience", "lca/batch"):
                run.define_metric(axis, hidden=True)
            for pattern, axis in (
                ("train/*", "train/iteration"),
                ("eval/*", "experience"),
                ("metrics/*", "experience"),
                ("time/*", "experience"),
                ("lca/*", "lca/batch"),
            ):
                run.define_metric(pattern, step_metric=axis)
            self._run = run
        return self._run

    @property
    def settings(self) -> dict[str, Any]:
        """Where the run goes: project, entity, name, group, tags and notes (None: not set)."""
        keys = ("project", "entity", "name", "group", "tags", "notes")
        return {k: self._init_args[k] for k in keys}

    def describe(self) -> str:
        """Where the run goes, in words: "W&B project agem (group g, tags a,b, offline)"."""
        settings = self.settings
        extra = [
            f"{key} {','.join(value) if isinstance(value, list) else value}"
            for key in ("entity", "group", "tags")
            if (value := settings[key])
        ]
        mode = self._init_args["mode"] or os.environ.get("WANDB_MODE", "").strip()
        extra += [mode] if mode in ("offline", "disabled") else []
        return f"W&B project {settings['project']}" + (f" ({', '.join(extra)})" if extra else "")

    @property
    def run(self) -> Any:
        """The W&B run (`wandb.Run`), created on first use."""
        return self.start()

    # ---- the Logger interface ----------------------------------------------------------
    def before_training(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        self.run.config.update(
            {
                "strategy_class": type(strategy).__name__,
                "train_mb_size": strategy.train_mb_size,
                "train_epochs": strategy.train_epochs,
                "device": str(strategy.device),
            },
            allow_val_change=True,
        )

    def log_losses(self, strategy: BaseTemplate, points: list[LossPoint]) -> None:
        for p in points:
            self.run.log({"train/loss": p.loss, "train/iteration": p.iteration})

    def log_epoch(self, strategy: BaseTemplate, record: dict[str, Any]) -> None:
        self.run.log(
            {
                "train/epoch_loss": record["loss"],
                "train/epoch_accuracy": record["accuracy"],
                "train/iteration": record["train_iterations"],
            }
        )

    def log_evaluation(
        self, strategy: BaseTemplate, record: dict[str, Any], summary: dict[str, Any]
    ) -> None:
        row = record["after_experience"]
        data: dict[str, Any] = evaluation_scalars(record)
        names = metric_names(summary) if row >= 0 else []
        data.update({f"metrics/{n}": summary[n] for n in names})
        self.run.log({**data, "experience": row + 1})
        if names:
            self.run.summary.update({n: summary[n] for n in names})

    def log_experience(self, strategy: BaseTemplate, record: dict[str, Any]) -> None:
        k = record["experience"]
        for b, acc in enumerate(record.get("lca_curve", [])):
            self.run.log({f"lca/exp{k}": acc, "lca/batch": b})
        if "train_seconds" in record:
            step = experiences_trained(strategy)
            self.run.log({"time/train_seconds": record["train_seconds"], "experience": step})

    def after_training(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        evaluator = self.evaluator(strategy)
        matrix = evaluator.summary()["accuracy_matrix"] if evaluator is not None else []
        if matrix:
            columns = ["after_experience", *(f"exp{j}" for j in range(len(matrix[0])))]
            table = self.wandb.Table(columns=columns, data=accuracy_table_rows(matrix))
            self.run.log({"accuracy_matrix": table})

    # ---- for the caller ----------------------------------------------------------------
    def log_plots(self, paths: Iterable[str | Path]) -> None:
        """Log image files (e.g. the run's PNG plots) as `plots/<file stem>`."""
        images = {f"plots/{Path(p).stem}": self.wandb.Image(str(p)) for p in paths}
        if images:
            self.run.log(images)

    def log_run_folder(self, folder: str | Path, results: Mapping[str, Any]) -> None:
        """Log the run folder's results as a W&B artifact `<run name>-results` (type
        "run-results"): `results` as results.json, config.json, metrics.csv and the PNG
        plots that are there (never the checkpoint)."""
        folder = Path(folder)
        name = artifact_name(f"{self._init_args['name'] or folder.name}-results")
        artifact = self.wandb.Artifact(name, type="run-results")
        with artifact.new_file("results.json", mode="w", encoding="utf-8") as f:
            json.dump(dict(results), f, indent=1)
        for path in [*(folder / n for n in ARTIFACT_FILES), *sorted(folder.glob("*.png"))]:
            if path.is_file() and not path.is_symlink():
                artifact.add_file(str(path), name=path.name)
        self.run.log_artifact(artifact)

    def close(self, status: str = "complete", *, exit_code: int | None = None) -> None:
        """Finish the W&B run (idempotent); a `status` other than "complete" (or a non-zero
        `exit_code`) marks it failed."""
        if exit_code is None:
            exit_code = 0 if status == "complete" else 1
        if not self._closed:
            self._closed = True
            if self._run is not None:
                self._run.finish(exit_code=exit_code)
