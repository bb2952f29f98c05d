"""`ConsoleLogger`: progress bars on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

from agem.plugins.loggers.base import Logger, LossPoint

if TYPE_CHECKING:
    from agem.core.template import BaseTemplate


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


class ConsoleLogger(Logger):
    """Report training and evaluation on a text stream.

    On a terminal, a tqdm progress bar per epoch (its postfix shows the recent training
    loss, refreshed every `flush_every` iterations); elsewhere (a file, a pipe, CI) one
    plain line per epoch. Either way one line per evaluation on test experiences.

    Args:
        file: where to write (default: `sys.stderr` at construction).
        interactive: force bars on (True) or off (False); default: `file.isatty()`.
        flush_every: iterations between loss read-backs for the bar's postfix.
    """

    def __init__(
        self,
        *,
        file: TextIO | None = None,
        interactive: bool | None = None,
        flush_every: int = 50,
    ) -> None:
        super().__init__(every=flush_every, flush_every=flush_every)
        self.file = file if file is not None else sys.stderr
        if interactive is not None and not isinstance(interactive, bool):
            raise TypeError(f"interactive must be a bool or None, got {interactive!r}")
        if interactive is None:
            isatty = getattr(self.file, "isatty", None)
            interactive = bool(isatty()) if callable(isatty) else False
        self.interactive = interactive
        self._bar: Any = None

    def _line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.file)
        else:
            print(text, file=self.file, flush=True)

    def before_training_epoch(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        if not self.interactive:
            return
        from tqdm import tqdm

        exp = strategy.experience
        data = strategy.adapted_dataset
        n = len(data) if data is not None else 0  # type: ignore[arg-type]
        total = -(-n // strategy.train_mb_size) if n else None
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
