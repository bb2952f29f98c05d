"""`run(config, out)`: train and evaluate one `RunConfig`, writing the run folder `out`.

The order of a run, so that a failure leaves nothing misleading behind:

1. Check everything that depends only on the settings and the machine (the folder may
   be used, the device exists, the dataset is found, the sizes fit in memory) and build
   the benchmark, model and strategy; nothing is written yet.
2. Lock and prepare the folder; write config.json and results.json ("running").
3. Train experience by experience; after each, write the checkpoint and results.json.
4. Write the plots and results.json ("complete").

SIGINT/SIGTERM end the run with status "interrupted" (`RunInterrupted`); a NaN or
infinite loss with status "diverged" (`TrainingDiverged`); an error of the environment
(disk full, permission denied) with status "failed" and a `RunEnvironmentError`.
Checkpoints and results are written inside a critical section that a signal does not
cut short (it takes effect right after). Once the last experience is trained and
evaluated (every metric recorded), a signal no longer stops the run: it writes its
plots and results and ends "complete".
"""

from __future__ import annotations

import contextlib
import io
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from agem.runs import checkpoint
from agem.runs.bounds import check_fits, check_sizes
from agem.runs.config import RunConfig
from agem.runs.divergence import DivergenceCheck, TrainingDiverged
from agem.runs.environment import check_device, environment, resolve_data
from agem.runs.factory import build_model, build_optimizer, build_strategy
from agem.runs.folder import RunFolder, RunFolderError
from agem.runtime import apply_threads

CSV_NAME = "metrics.csv"
EVENTS_PREFIX = "events.out.tfevents."
_SIGNALS = (signal.SIGINT, signal.SIGTERM)

__all__ = ["RunEnvironmentError", "RunInterrupted", "TrainingDiverged", "run"]


class RunInterrupted(Exception):
    """SIGINT or SIGTERM stopped the run; its folder says "interrupted"."""

    def __init__(self, signum: int, out: Path | None = None) -> None:
        self.signum = signum
        self.out = out
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class RunEnvironmentError(ValueError):
    """The machine refused something the run needs (disk full, permission denied)."""


class _Signals:
    """SIGINT/SIGTERM raise `RunInterrupted`, except inside `critical()` (then after it).

    A signal is also remembered when it raises: code that caught the exception and went
    on (a library's broad `except Exception`) cannot lose it, since the end of the next
    critical section, or `raise_pending`, raises it again.
    """

    def __init__(self) -> None:
        self.pending: int | None = None
        self.depth = 0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: Any) -> None:
        self.pending = self.pending or signum
        if not self.depth:
            raise RunInterrupted(signum)

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        self.raise_pending()

    def raise_pending(self) -> None:
        """Raise `RunInterrupted` for a signal received outside `hold()` and not acted
        on yet (inside a critical section, or swallowed by the code it interrupted)."""
        if not self.depth and self.pending:
            signum, self.pending = self.pending, None
            raise RunInterrupted(signum)

    def hold(self) -> None:
        """From now on, signals are only remembered (the run is ending anyway)."""
        self.depth += 1


def _oserror_line(err: OSError) -> str:
    where = f": {err.filename}" if err.filename else ""
    return f"{err.strerror or err}{where}"


class _Run:
    """One run being executed: its parts, built before the folder is touched.

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
        from agem.benchmarks.registry import get
        from agem.plugins.evaluation import EvaluationPlugin
        from agem.plugins.loggers import ConsoleLogger, CSVLogger, TensorBoardLogger, WandBLogger

        self.config = config
        self.folder = folder
        check_sizes(config)
        self.device = check_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        builder_dir, self.data_read = resolve_data(config)
        self.benchmark = get(config.benchmark).build(
            n_experiences=config.n_experiences,
            seed=config.seed,
            task_labels=config.task_labels,
            data_dir=builder_dir,
            download=config.download,
            train_subset=config.train_subset,
            fresh_subset=config.fresh_subset,
        )
        if config.experiences is not None:
            from agem.benchmarks.ranges import parse_range, select_experiences

            start, stop = parse_range(config.experiences)
            self.benchmark = select_experiences(self.benchmark, start, stop)
        check_fits(config, self.benchmark)
        torch.manual_seed(config.seed)  # the model's initial weights
        model = build_model(
            config.model,
            self.benchmark,
            hidden_sizes=config.hidden_sizes,
            progressive=config.strategy == "pnn",
            init=config.init,
        )
        apply_threads(config.threads, model, self.device)  # None: the rule for this model
        optimizer = build_optimizer(config, model)
        out = folder.path
        self.evaluator = EvaluationPlugin(
            eval_stream=self.benchmark.test_stream,
            eval_every="experience",
            lca_beta=config.lca_beta,
            lca_test_size=config.lca_test_size or None,  # 0: the whole test set
        )
        names = config.logger_names()
        every = config.log_every
        self.csv = CSVLogger(out / CSV_NAME, every=every) if "csv" in names else None
        self.tensorboard = (
            TensorBoardLogger(out, every=every, hparams=config.to_dict())
            if "tensorboard" in names
            else None
        )
        self.wandb = (  # the W&B run starts with training, inside the run folder
            WandBLogger(name=out.name, config=config.to_dict(), dir=out, every=every, lazy=True)
            if "wandb" in names
            else None
        )
        loggers = [x for x in (self.csv, self.tensorboard, self.wandb) if x is not None]
        # a quiet member of a fleet still has one, so that its plugins (and its
        # checkpoint) are those of the same run alone
        console_logger = (
            ConsoleLogger(interactive=progress)
            if console
            else ConsoleLogger(file=io.StringIO(), interactive=False)
        )
        plugins = [DivergenceCheck(), console_logger, *loggers]
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
        self.strategy = build_strategy(config.strategy, model, optimizer, config.to_dict(), common)
        self.done = 0
        self.elapsed_before = 0.0
        self.checkpoint_seconds = 0.0  # spent capturing and writing checkpoints
        self.checkpoint_digest: str | None = None  # of the checkpoint now in the folder
        self.results: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}  # more entries for results.json (e.g. fleet_size)

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

    def log_files(self) -> dict[str, bytes]:
        """metrics.csv and the TensorBoard event files as they are now."""
        if self.tensorboard is not None:
            self.tensorboard.flush()
        files = {}
        for path in sorted(self.folder.path.iterdir()):
            if path.name == CSV_NAME or path.name.startswith(EVENTS_PREFIX):
                files[path.name] = path.read_bytes()
        return files

    def restore_logs(self, logs: dict[str, bytes]) -> None:
        """Put the log files back as the checkpoint saw them; drop any written since."""
        for path in self.folder.path.iterdir():
            if (path.name == CSV_NAME or path.name.startswith(EVENTS_PREFIX)) and (
                path.name not in logs
            ):
                path.unlink()
        for name, data in logs.items():
            self.folder.write_bytes(name, data)
        if CSV_NAME in logs and self.csv is not None:
            self.csv._started = True  # append to the restored file
        for logger in self.strategy.plugins:
            if hasattr(logger, "_seen_evaluations"):
                logger._seen_evaluations = len(self.evaluator.evaluations)

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
            checkpoint.restore(state, self.strategy)
            self.done = int(state["experiences_done"])
            self.elapsed_before = float(state.get("elapsed_seconds", 0.0))
            self.checkpoint_seconds = float(state.get("checkpoint_seconds", 0.0))
            if hasattr(self.strategy, "seen_experiences"):  # Cumulative: the data seen so far
                stream = self.benchmark.train_stream
                self.strategy.seen_experiences = {
                    e.current_experience: e for e in list(stream)[: self.done]
                }
        current = self.current_results(self.elapsed_before)
        self.results = self.folder.write_results(current, "running")

    def train(self, signals: _Signals) -> dict[str, Any]:
        """Train the experiences not done yet; checkpoint after each; finish the folder."""
        start = time.perf_counter()
        stream = list(self.benchmark.train_stream)
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
            self.close_loggers()
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

    def close_loggers(self) -> None:
        """Close TensorBoard's writer (with the hyperparameters and final metrics)."""
        if self.tensorboard is not None:
            self.tensorboard.close()

    def finish(self, elapsed: float) -> dict[str, Any]:
        """Write the plots, close W&B and write results.json ("complete")."""
        from agem.reporting.plots import write_run_plots

        results = self.current_results(elapsed)
        plots = write_run_plots(results, self.folder.path)
        if self.wandb is not None:
            self.wandb.log_plots(plots)
            self.wandb.close()
        self.results = self.folder.write_results(results, "complete")
        return self.results

    def end(self, status: str, **extra: Any) -> None:
        """Record `status` over the last results written (best effort: the disk may be full)."""
        if self.tensorboard is not None:
            with contextlib.suppress(OSError):
                self.tensorboard.close()
        if self.wandb is not None:
            with contextlib.suppress(Exception):  # W&B's own failure must not hide the run's
                self.wandb.close(exit_code=1)
        with contextlib.suppress(OSError):
            self.results = self.folder.write_results({**self.results, **extra}, status)


def run(
    config: RunConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    members: Sequence[str | Path] | None = None,
) -> dict[str, Any]:
    """Train and evaluate as `config` says in the run folder `out`; return the results.

    The folder gets config.json (the settings and the environment), results.json (status,
    accuracy matrix, every metric, timing and memory), checkpoint.pt, metrics.csv,
    TensorBoard events and PNG plots. `resume=True` continues the run in `out` from its
    last checkpoint (a complete run's results are returned as they are); `overwrite=True`
    clears a non-empty `out` first. `progress` forces progress bars on or off (default:
    on when stderr is a terminal).

    With `config.fleet` K > 1 the seeds seed..seed+K-1 are trained in lockstep into the
    run folders `out/seed<s>`, or `members` (one folder per seed; `out` is then unused;
    see `agem.fleet.run`); the result is then
    {"status", "fleet_size", "runs": [each run's results]}. A fleet cannot be resumed as
    a whole: each of its folders resumes as a single run.

    Raises `RunFolderError` / `RunEnvironmentError` / `ValueError` (one-line messages;
    the command line exits 2), `TrainingDiverged` (exit 3) and `RunInterrupted`
    (exit 130 or 143).
    """
    config = config.resolved()
    if members is not None and config.fleet == 1:
        raise ValueError("member folders name the runs of a fleet: give --fleet K too")
    if config.fleet > 1:
        from agem.fleet.run import run_fleet

        if resume:
            raise RunFolderError(
                f"a fleet is not resumed as a whole: resume each of its runs with "
                f"agem run --resume {Path(out)}/seed<s>"
            )
        with _Signals() as signals:
            folders = None if members is None else [Path(m) for m in members]
            return run_fleet(
                config, Path(out), signals, overwrite=overwrite, progress=progress, members=folders
            )
    folder = RunFolder(out)
    with _Signals() as signals:
        try:
            if resume:
                try:
                    folder.open_existing()
                except OSError:  # e.g. a read-only file system: a complete run stays so
                    if folder.status() != "complete":
                        raise
                if folder.status() == "complete":
                    results = folder.read_json("results.json")
                    assert results is not None
                    return results
                saved = RunConfig.from_file(folder.path / "config.json")
                differ = config.same_run(saved)
                if differ:
                    raise RunFolderError(
                        f"{folder.path}/config.json differs from the config given in "
                        f"{', '.join(differ)}"
                    )
                execution = _Run(config, folder, progress)
                return _execute(execution, signals, execution.resume)
            folder.check_new(overwrite=overwrite)
            execution = _Run(config, folder, progress)
            return _execute(execution, signals, lambda: execution.start(overwrite=overwrite))
        except RunInterrupted as err:
            # stopped before training: resumable only if the folder holds this run
            resumable = folder.locked and (folder.path / "config.json").is_file()
            raise RunInterrupted(err.signum, folder.path if resumable else None) from None
        finally:
            folder.unlock()


class Execution(Protocol):
    """What `execute` drives: one run (`_Run`) or a fleet of runs."""

    def train(self, signals: _Signals) -> dict[str, Any]: ...

    def end(self, status: str, **extra: Any) -> None: ...


def _execute(
    execution: Execution, signals: _Signals, prepare: Callable[[], None]
) -> dict[str, Any]:
    """Prepare the folder and train; record how the run ended if it ends early."""
    started = False
    try:
        with signals.critical():
            prepare()
        started = True
        return execution.train(signals)
    except RunInterrupted:
        signals.hold()
        if started:
            execution.end("interrupted")
        raise
    except TrainingDiverged as err:
        signals.hold()
        where = {"experience": err.experience, "iteration": err.iteration}
        execution.end("diverged", diverged=where)
        raise
    except OSError as err:
        signals.hold()
        if started:
            execution.end("failed", error=_oserror_line(err))
        raise RunEnvironmentError(_oserror_line(err)) from None
    except MemoryError:
        signals.hold()
        if started:
            execution.end("failed", error="out of memory")
        raise RunEnvironmentError("out of memory (try smaller sizes)") from None
    except BaseException as err:
        signals.hold()
        if started:
            execution.end("failed", error=f"{type(err).__name__}: {err}")
        raise
