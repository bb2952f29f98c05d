"""`ConsoleLogger`: progress bars on a terminal, plain lines otherwise."""

from __future__ import annotations

import math
import os
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from agem.plugins.loggers.base import Logger, LossPoint, check_count

if TYPE_CHECKING:
    from agem.core.template import BaseTemplate


#: the environment variable that sets the seconds between progress lines off a terminal
PROGRESS_ENV = "AGEM_PROGRESS_INTERVAL"
DEFAULT_PROGRESS_SECONDS = 30.0


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def progress_interval(value: float | None = None) -> float:
    """Seconds between progress lines: `value`, else $AGEM_PROGRESS_INTERVAL, else 30;
    0 turns the lines off. A ValueError names a value that is not a number >= 0."""
    where: str = "progress_every"
    if value is None:
        text = os.environ.get(PROGRESS_ENV, "").strip()
        if not text:
            return DEFAULT_PROGRESS_SECONDS
        where = PROGRESS_ENV
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{where} must be a number of seconds >= 0, got {text!r}") from None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{where} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def duration(seconds: float) -> str:
    """`seconds` for people: "42 s", "5 min 10 s", "2 h 05 min"."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ConsoleLogger(Logger):
    """Report training and evaluation on a text stream.

    On a terminal, a tqdm progress bar per epoch (its postfix shows the recent training
    loss, refreshed every `flush_every` iterations); elsewhere (a file, a pipe, CI, SLURM,
    nohup) one plain line per epoch, and during long work a progress line every
    `progress_every` seconds: experience, epoch, iteration, the last minibatch's loss and
    an estimate of the time left. The loss is read from the device only for such a line,
    so there is no host synchronisation per iteration. Either way one line per
    evaluation on test experiences.

    Args:
        file: where to write (default: `sys.stderr` at construction).
        interactive: force bars on (True) or off (False); default: `file.isatty()`.
        flush_every: iterations between loss read-backs for the bar's postfix.
        progress_every: seconds between progress lines off a terminal (default:
            $AGEM_PROGRESS_INTERVAL, else 30; 0: none).
        total_experiences: the experiences the run trains, for the time left (default:
            the current experience is taken as the last).
    """

    def __init__(
        self,
        *,
        file: TextIO | None = None,
        interactive: bool | None = None,
        flush_every: int = 50,
        progress_every: float | None = None,
        total_experiences: int | None = None,
    ) -> None:
        super().__init__(every=flush_every, flush_every=flush_every)
        self.progress_every = progress_interval(progress_every)
        if total_experiences is not None:
            check_count("total_experiences", total_experiences)
        self.total_experiences = total_experiences
        self.file = file if file is not None else sys.stderr
        if interactive is not None and not isinstance(interactive, bool):
            raise TypeError(f"interactive must be a bool or None, got {interactive!r}")
        if interactive is None:
            isatty = getattr(self.file, "isatty", None)
            interactive = bool(isatty()) if callable(isatty) else False
        self.interactive = interactive
        self._bar: Any = None
        self._epoch_iterations = 0  # minibatches per epoch of the current experience
        self._started: tuple[float, int] | None = None  # (clock time, iterations) at start
        self._next_line = math.inf

    def _line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.file)
        else:
            print(text, file=self.file, flush=True)

    def note(self, text: str) -> None:
        """Write one line of `text` (e.g. where the run logs to)."""
        self._line(text)

    def before_training_epoch(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        exp = strategy.experience
        data = strategy.adapted_dataset
        n = len(data) if data is not None else 0  # type: ignore[arg-type]
        total = -(-n // strategy.train_mb_size) if n else None
        self._epoch_iterations = total or 0
        if not self.interactive:
            if self._started is None and self.progress_every > 0:
                self._started = (time.monotonic(), strategy.clock.train_iterations)
                self._next_line = self._started[0] + self.progress_every
            return
        from tqdm import tqdm

        k = exp.current_experience if exp is not None else -1
        self._bar = tqdm(
            total=total,
            desc=f"exp {k} epoch {strategy.clock.train_exp_epochs + 1}/{strategy.train_epochs}",
            file=self.file,
            leave=False,
            dynamic_ncols=True,
            unit="it",
        )

    def after_training_iteration(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        if self._bar is not None:
            self._bar.update(1)
            super().after_training_iteration(strategy, **kwargs)
        elif self._started is not None and time.monotonic() >= self._next_line:
            self._progress_line(strategy, *self._started)

    def _progress_line(self, strategy: BaseTemplate, began: float, first: int) -> None:
        """One progress line; reads the last minibatch's loss (one synchronisation)."""
        now = time.monotonic()
        self._next_line = now + self.progress_every
        clock, exp = strategy.clock, strategy.experience
        k = exp.current_experience if exp is not None else -1
        position = clock.train_exp_counter + 1
        total = self.total_experiences or position
        per_epoch = self._epoch_iterations
        iteration = clock.train_epoch_iterations + 1  # this one has not been counted yet
        loss = strategy.loss.item() if strategy.loss is not None else None
        line = (
            f"progress: exp {k} ({position}/{total}) epoch "
            f"{clock.train_exp_epochs + 1}/{strategy.train_epochs} iteration "
            f"{iteration}/{per_epoch or '?'}  loss {_fmt(loss)}"
        )
        done = clock.train_iterations + 1 - first
        if per_epoch and done > 0:
            epochs_left = strategy.train_epochs - clock.train_exp_epochs - 1
            left = per_epoch - iteration + epochs_left * per_epoch
            left += max(0, total - position) * strategy.train_epochs * per_epoch
            rate = (now - began) / done  # seconds per iteration, evaluations included
            line += f"  ETA {duration(left * rate)}"
        self._line(line)

    def log_losses(self, strategy: BaseTemplate, points: list[LossPoint]) -> None:
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{points[-1].loss:.4f}", refresh=False)

    def after_training_epoch(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        super().after_training_epoch(strategy, **kwargs)
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def log_epoch(self, strategy: BaseTemplate, record: dict[str, Any]) -> None:
        self._line(
            f"exp {record['experience']} epoch {record['epoch'] + 1}/{strategy.train_epochs}: "
            f"loss {record['loss']:.4f}  accuracy {record['accuracy']:.4f}  "
            f"({record['iterations']} iterations)"
        )

    def log_experience(self, strategy: BaseTemplate, record: dict[str, Any]) -> None:
        seconds = record.get("train_seconds")
        if seconds is not None:
            self._line(f"exp {record['experience']} trained in {seconds:.2f} s")

    def log_evaluation(
        self, strategy: BaseTemplate, record: dict[str, Any], summary: dict[str, Any]
    ) -> None:
        accs = record["accuracy"]
        after = record["after_experience"]
        when = "untrained model" if after < 0 else f"after exp {after}"
        mean = sum(accs.values()) / len(accs)
        per = " ".join(f"{v:.3f}" for v in accs.values())
        line = f"eval {when}: mean accuracy {mean:.4f}  [{per}]"
        shown = ("A_T", "F_T", "A_T_task_il") if "A_T_task_il" in summary else ("A_T", "F_T")
        extra = [f"{k} {_fmt(summary.get(k))}" for k in shown if after >= 0]
        self._line(line + ("  " + "  ".join(extra) if extra else ""))
