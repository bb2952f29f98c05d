"""`SingleRun`: one run folder being executed, its parts built before the folder is touched.

Its phases (`start` or `resume`, `train`, `experience_done`, `finish`, `end`) are what
`agem.runs.lifecycle.drive` calls for a run alone and what `agem.runs.fleet_run.FleetRun`
calls for each member of a fleet.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import time
from contextlib import nullcontext
from typing import Any

import torch

from agem.benchmarks.ranges import parse_range, select_experiences
from agem.benchmarks.registry import get
from agem.benchmarks.streams import Benchmark
from agem.core.evaluation import EvaluationPlugin
from agem.core.template import BaseTemplate
from agem.forked import Standby
from agem.importpath import OwnCodeError
from agem.plugins.loggers import ConsoleLogger, CSVLogger, Logger, TensorBoardLogger, WandBLogger
from agem.reporting.plots import plot_standby, write_run_plots
from agem.runs import checkpoint
from agem.runs.bounds import check_fits, check_sizes
from agem.runs.config import RunConfig
from agem.runs.divergence import DivergenceCheck
from agem.runs.environment import check_device, environment, resolve_data
from agem.runs.factory import (
    build_model,
    build_optimizer,
    build_plugins,
    build_strategy,
    own_code_errors,
)
from agem.runs.folder import RunFolder
from agem.runs.lifecycle import Signals
from agem.runtime import apply_threads
from agem.strategies.registry import get_strategy

CSV_NAME = "metrics.csv"
EVENTS_PREFIX = "events.out.tfevents."


def _is_log_file(name: str) -> bool:
    return name == CSV_NAME or name.startswith(EVENTS_PREFIX)


class SingleRun:
    """One run being executed: its benchmark, evaluator, loggers and strategy.

    `console=False` silences the console logger and `capture=False` builds the strategy
    without its own CUDA graph (a fleet reports one run of K and captures its own step).
    """

    def __init__(
        self,
        config: RunConfig,
        folder: RunFolder,
        progress: bool | None,
        *,
        console: bool = True,
        capture: bool = True,
    ) -> None:
        self.config = config
        self.folder = folder
        check_sizes(config)
        self.device = check_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.benchmark = self._build_benchmark()
        self.evaluator = EvaluationPlugin(
            eval_stream=self.benchmark.test_stream,
            eval_every="experience",
            lca_beta=config.lca_beta,
            lca_test_size=config.lca_test_size or None,  # 0: the whole test set
        )
        self.loggers = self._build_loggers()
        # a quiet member of a fleet still has one, so that its plugins (and its
        # checkpoint) are those of the same run alone
        experiences = len(self.benchmark.train_stream)
        self.console = (
            ConsoleLogger(interactive=progress, total_experiences=experiences)
            if console
            else ConsoleLogger(file=io.StringIO(), interactive=False, progress_every=0)
        )
        plugins = [DivergenceCheck(), *build_plugins(config.plugin), self.console, *self.loggers]
        self.strategy = self._build_strategy(plugins, capture=capture)
        self.done = 0
        self.elapsed_before = 0.0
        self.checkpoint_seconds = 0.0  # spent capturing and writing checkpoints
        self.checkpoint_digest: str | None = None  # of the checkpoint now in the folder
        self.results: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}  # more entries for results.json (e.g. fleet_size)
        self.plotter: Standby | None = None  # imports matplotlib while training, for finish

    # ---- parts -------------------------------------------------------------------------
    def _build_benchmark(self) -> Benchmark:
        """The benchmark of the config, found on this machine, cut to its experiences."""
        config = self.config
        builder_dir, self.data_read = resolve_data(config)
        spec = get(config.benchmark)
        with own_code_errors(f"--benchmark {config.benchmark}") if spec.own else nullcontext():
            benchmark = spec.build(
                n_experiences=config.n_experiences,
                seed=config.seed,
                task_labels=config.task_labels,
                data_dir=builder_dir,
                download=config.download,
                train_subset=config.train_subset,
                fresh_subset=config.fresh_subset,
                args=config.benchmark_args,
            )
        if spec.own:  # its length is the number of experiences, given or not
            built = len(benchmark.train_stream)
            if config.n_experiences not in (None, built):
                raise OwnCodeError(
                    f"--n-experiences {config.n_experiences}: --benchmark {config.benchmark} "
                    f"gave {built} experiences"
                )
            config = self.config = dataclasses.replace(config, n_experiences=built)
        if config.experiences is not None:
            start, stop = parse_range(config.experiences)
            benchmark = select_experiences(benchmark, start, stop)
        check_fits(config, benchmark)
        return benchmark

    def _build_loggers(self) -> list[Logger]:
        """The file loggers the config names, writing into the run folder."""
        config, out = self.config, self.folder.path
        names = config.logger_names()
        every = config.log_every
        loggers: list[Logger] = []
        if "csv" in names:
            loggers.append(CSVLogger(out / CSV_NAME, every=every))
        if "tensorboard" in names:
            loggers.append(TensorBoardLogger(out, every=every, hparams=config.to_dict()))
        if "wandb" in names:  # the W&B run starts with training, inside the run folder
            tags = None if config.wandb_tags is None else config.wandb_tags.split(",")
            loggers.append(
                WandBLogger(
                    project=config.wandb_project,
                    entity=config.wandb_entity,
                    group=config.wandb_group,
                    tags=tags,
                    default_name=out.name,
                    config=config.to_dict(),
                    dir=out,
                    every=every,
                    lazy=True,
                )
            )
        return loggers

    def _build_strategy(self, plugins: list[Any], *, capture: bool) -> BaseTemplate:
        """The model (seeded), its optimizer and the strategy of the config."""
        config = self.config
        torch.manual_seed(config.seed)  # the model's initial weights
        model = build_model(
            config.model,
            self.benchmark,
            hidden_sizes=config.hidden_sizes,
            progressive=get_strategy(config.strategy).progressive,
            init=config.init,
            args=config.model_args,
        )
        optimizer = build_optimizer(config, model)
        common = {
            "train_mb_size": config.batch_size,
            "train_epochs": config.epochs,
            "eval_mb_size": config.eval_batch_size,
            "device": self.device,
            "seed": config.seed,
            "plugins": plugins,
            "evaluator": self.evaluator,
        }
        if config.cuda_graph and capture:
            common["cuda_graph"] = True
        strategy = build_strategy(config.strategy, model, optimizer, config.to_dict(), common)
        # after the strategy, which applies the rule itself: an explicit --threads wins
        apply_threads(config.threads, model, self.device)  # None: the rule for this model
        return strategy

    # ---- results and logs ------------------------------------------------------------
    def current_results(self, elapsed: float) -> dict[str, Any]:
        config = self.config
        return {
            "strategy": config.strategy,
            "benchmark": config.benchmark,
            "n_experiences": config.n_experiences,
            "seed": config.seed,
            "experiences_done": self.done,
            **self.evaluator.results,
            "total_seconds": elapsed,
            "checkpoint_seconds": self.checkpoint_seconds,
            **self.extra,
        }

    def logs_line(self) -> str:
        """Where this run logs to, said once before training (which loggers are on)."""
        names = self.config.logger_names()
        parts = ["metrics.csv"] + (["TensorBoard events"] if "tensorboard" in names else [])
        parts += [logger.describe() for logger in self.loggers if isinstance(logger, WandBLogger)]
        line = f"logging to {', '.join(parts)} in {self.folder.path}"
        if "tensorboard" not in names:
            line += " (no TensorBoard: --logger +NAME adds NAME to csv,tensorboard)"
        return line

    def log_files(self) -> dict[str, bytes]:
        """metrics.csv and the TensorBoard event files as they are now."""
        for logger in self.loggers:
            logger.flush()
        files = {}
        for path in sorted(self.folder.path.iterdir()):
            if _is_log_file(path.name):
                files[path.name] = path.read_bytes()
        return files

    def restore_logs(self, logs: dict[str, bytes]) -> None:
        """Put the log files back as the checkpoint saw them; drop any written since."""
        for path in self.folder.path.iterdir():
            if _is_log_file(path.name) and path.name not in logs:
                path.unlink()
        for name, data in logs.items():
            self.folder.write_bytes(name, data)
        for plugin in self.strategy.plugins:
            if isinstance(plugin, Logger):
                plugin.resume(self.evaluator)

    # ---- phases ----------------------------------------------------------------------
    def start(self, *, overwrite: bool) -> None:
        """Create and lock the folder; write config.json and the first results.json."""
        self.folder.create(overwrite=overwrite)
        saved = {
            **self.config.to_dict(),
            "environment": environment(self.config, self.device, self.data_read),
        }
        self.folder.write_json("config.json", saved)
        self.results = self.folder.write_results(self.current_results(0.0), "running")
        self.console.note(self.logs_line())

    def resume(self) -> None:
        """Load the folder's checkpoint (checked first) or, without one, start over."""
        found = checkpoint.read(self.folder)
        if found is None:
            self.folder.clear(keep=("config.json",))
        else:
            state, self.checkpoint_digest = found
            checkpoint.check(state, self.config, self.strategy)
            before = self.folder.read_json("results.json") or {}
            if isinstance(before.get("fleet_size"), int):  # a fleet's member continues
                self.extra["fleet_size"] = before["fleet_size"]
            self.restore_logs(checkpoint.log_bytes(state))
            own = self.config.own_code()  # its load_state_dict may fail: one line
            loading = own_code_errors(f"loading the checkpoint into {', '.join(own)}")
            with loading if own else nullcontext():
                checkpoint.restore(state, self.strategy)
            self.done = int(state["experiences_done"])
            self.elapsed_before = float(state.get("elapsed_seconds", 0.0))
            self.checkpoint_seconds = float(state.get("checkpoint_seconds", 0.0))
            self.strategy.resume_trained(list(self.benchmark.train_stream)[: self.done])
        current = self.current_results(self.elapsed_before)
        self.results = self.folder.write_results(current, "running")
        self.console.note(self.logs_line())

    def train(self, signals: Signals) -> dict[str, Any]:
        """Train the experiences not done yet; checkpoint after each; finish the folder."""
        start = time.perf_counter()
        stream = list(self.benchmark.train_stream)
        with plot_standby() if self.config.plots else nullcontext() as self.plotter:
            for number, experience in enumerate(stream[self.done :], start=self.done + 1):
                self.strategy.train(experience)
                if number == len(stream):
                    signals.raise_pending()  # one that training swallowed still interrupts
                    signals.hold()  # every metric is recorded: the run ends complete
                elapsed = self.elapsed_before + time.perf_counter() - start
                with signals.critical():
                    self.experience_done(elapsed)
            signals.hold()  # also when a resumed run had trained every experience already
            with signals.critical():
                return self.finish(self.elapsed_before + time.perf_counter() - start)

    def experience_done(self, elapsed: float) -> None:
        """Count the experience just trained; write the checkpoint and results.json."""
        self.done += 1
        if self.config.checkpoint:
            began = time.perf_counter()
            state = checkpoint.capture(
                self.strategy,
                config=self.config,
                experiences_done=self.done,
                elapsed_seconds=elapsed,
                checkpoint_seconds=self.checkpoint_seconds,
                logs=self.log_files(),
            )
            self.checkpoint_digest = checkpoint.write(
                self.folder, state, previous=self.checkpoint_digest
            )
            self.checkpoint_seconds += time.perf_counter() - began
        self.results = self.folder.write_results(self.current_results(elapsed), "running")

    def finish(self, elapsed: float) -> dict[str, Any]:
        """Write the plots (unless `plots` is off), hand them and the folder to the loggers
        and close them (TensorBoard writes its hyperparameters, W&B its results artifact
        and finishes), then write results.json ("complete")."""
        results = self.current_results(elapsed)
        plots = (
            write_run_plots(
                results,
                self.folder.path,
                formats=self.config.plot_formats(),
                standby=self.plotter,
            )
            if self.config.plots
            else []
        )
        images = [p for p in plots if p.suffix == ".png"]  # what loggers can show
        final = {"status": "complete", **results}
        for logger in self.loggers:
            logger.log_plots(images)
            logger.log_run_folder(self.folder.path, final)
            logger.close("complete")
        self.results = self.folder.write_results(results, "complete")
        return self.results

    def end(self, status: str, **extra: Any) -> None:
        """Record `status` over the last results written (best effort: the disk may be full)."""
        for logger in self.loggers:
            # a logger's own failure (disk full, W&B) must not hide the run's
            with contextlib.suppress(Exception):
                logger.close(status)
        with contextlib.suppress(OSError):
            self.results = self.folder.write_results({**self.results, **extra}, status)
