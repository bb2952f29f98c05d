"""A contiguous range of a benchmark's experiences, e.g. `3:20`.

The A-GEM paper chooses hyperparameters on the first 3 of 20 tasks and reports on the
other 17: both are ranges of one benchmark, built with the same seed so that they never
share a task. A range is renumbered from 0 like `reserve_validation`'s parts.
"""

from __future__ import annotations

from agem.benchmarks.protocols import reserve_validation
from agem.benchmarks.streams import Benchmark


def parse_range(text: str) -> tuple[int, int | None]:
    """`START:STOP` (either may be empty: `:3`, `3:`) -> (start, stop or None)."""
    start_text, sep, stop_text = text.partition(":")
    try:
        start = int(start_text) if start_text.strip() else 0
        stop = int(stop_text) if stop_text.strip() else None
    except ValueError:
        raise ValueError(f"expected experiences as START:STOP like 3:20, got {text!r}") from None
    if not sep or start < 0 or (stop is not None and stop <= start):
        raise ValueError(f"expected experiences as START:STOP like 3:20, got {text!r}")
    return start, stop


def select_experiences(benchmark: Benchmark, start: int, stop: int | None) -> Benchmark:
    """Experiences `start` (inclusive) to `stop` (exclusive) of `benchmark`, renumbered."""
    n = benchmark.n_experiences
    stop = n if stop is None else stop
    if not 0 <= start < stop <= n:
        raise ValueError(
            f"experiences {start}:{stop} are not within the benchmark's {n} experiences"
        )
    part = reserve_validation(benchmark, start) if start > 0 else benchmark
    if stop - start < part.n_experiences:
        part = reserve_validation(part, stop - start).info["validation"]
    return part
