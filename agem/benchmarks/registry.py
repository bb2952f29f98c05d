"""Named benchmark builders, as used by the command line.

Each entry maps a name to a builder called as
`builder(n_experiences=..., seed=..., data_dir=..., download=..., task_labels=...)`;
entries that do not use an argument ignore it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agem.benchmarks.streams import Benchmark


@dataclass(frozen=True)
class BenchmarkSpec:
    """How to build a named benchmark, and what it needs."""

    name: str
    build: Callable[..., Benchmark]
    default_experiences: int
    description: str
    offline: bool = False
    dataset: str | None = None  # the files it reads, for `agem datasets`


def _digits(split_kind: str) -> Callable[..., Benchmark]:
    def build(
        *,
        n_experiences: int,
        seed: int,
        task_labels: bool = False,
        data_dir: Path | None = None,
        download: bool = True,
        **_: Any,
    ) -> Benchmark:
        from agem.benchmarks import digits

        if split_kind == "split":
            return digits.split_digits(n_experiences, seed=seed, task_labels=task_labels)
        return digits.permuted_digits(n_experiences, seed=seed)

    return build


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "permuted_digits": BenchmarkSpec(
        "permuted_digits",
        _digits("permuted"),
        5,
        "scikit-learn's 8x8 digits, one pixel permutation per experience (offline)",
        offline=True,
    ),
    "split_digits": BenchmarkSpec(
        "split_digits",
        _digits("split"),
        5,
        "scikit-learn's 8x8 digits, two classes per experience (offline)",
        offline=True,
    ),
}

DEFAULT_BENCHMARK = "permuted_digits"


def get(name: str) -> BenchmarkSpec:
    """The spec registered under `name`, or a ValueError listing the known names."""
    try:
        return BENCHMARKS[name]
    except KeyError:
        known = ", ".join(sorted(BENCHMARKS))
        raise ValueError(f"unknown benchmark {name!r}; choose one of: {known}") from None
