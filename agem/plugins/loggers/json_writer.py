"""`JSONResultsWriter`: the evaluator's results as a JSON file, kept up to date."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agem.atomic import write_text_atomic
from agem.plugins.loggers.base import Logger

if TYPE_CHECKING:
    from agem.core.template import BaseTemplate


def _plain(value: Any) -> Any:
    """`value` with NaN and infinities as None, so that the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_json(path: str | Path, data: Mapping[str, Any]) -> None:
    """Write `data` to `path` atomically (a temporary file, then a rename), strict JSON."""
    write_text_atomic(path, json.dumps(_plain(data), indent=2, allow_nan=False) + "\n")


class JSONResultsWriter(Logger):
    """Write `strategy.evaluator.results` (plus `extra`) to `path` after every evaluation
    on test data and at the end of each `train()` call, so that the file always holds the
    latest results, even when a run stops early.

    `extra` (e.g. strategy and benchmark names) is merged in first; the evaluator's keys
    win on a clash. It may be updated later through the `extra` attribute.
    """

    def __init__(self, path: str | Path, *, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(losses=False)
        self.path = Path(path)
        self.extra: dict[str, Any] = dict(extra or {})

    def write(self, strategy: BaseTemplate) -> dict[str, Any]:
        """Write the results now; return what was written."""
        evaluator = self.evaluator(strategy)
        if evaluator is None:
            raise ValueError("JSONResultsWriter needs the strategy's evaluator (evaluator=False)")
        data = {**self.extra, **evaluator.results}
        write_json(self.path, data)
        return data

    def log_evaluation(
        self, strategy: BaseTemplate, record: dict[str, Any], summary: dict[str, Any]
    ) -> None:
        self.write(strategy)

    def after_training(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        if self.evaluator(strategy) is not None:
            self.write(strategy)
