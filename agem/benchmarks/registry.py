"""Named benchmark builders, as used by the command line.

Each entry maps a name to a builder called as
`builder(n_experiences=..., seed=..., data_dir=..., download=..., task_labels=...,
train_subset=..., fresh_subset=...)`;
entries that do not use an argument ignore it.
"""

from __future__ import annotations

import inspect
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


def _no_subset(name: str, train_subset: int | None) -> None:
    if train_subset is not None:
        raise ValueError(f"train_subset applies to permuted and rotated benchmarks, not {name}")


def _digits(split_kind: str) -> Callable[..., Benchmark]:
    def build(
        *,
        n_experiences: int,
        seed: int,
        task_labels: bool = False,
        data_dir: Path | None = None,
        download: bool = True,
        train_subset: int | None = None,
        fresh_subset: bool = False,
        **_: Any,
    ) -> Benchmark:
        from agem.benchmarks import digits

        if split_kind == "split":
            _no_subset("split_digits", train_subset)
            return digits.split_digits(n_experiences, seed=seed, task_labels=task_labels)
        return digits.permuted_digits(
            n_experiences,
            seed=seed,
            task_labels=task_labels,
            train_subset=train_subset,
            fresh_subset=fresh_subset,
        )

    return build


def _from_files(builder_name: str) -> Callable[..., Benchmark]:
    """A CLI builder for `agem.benchmarks.<builder_name>`, reading files from `data_dir`."""

    def build(
        *,
        n_experiences: int,
        seed: int,
        task_labels: bool = False,
        data_dir: Path | None = None,
        download: bool = True,
        train_subset: int | None = None,
        fresh_subset: bool = False,
        **_: Any,
    ) -> Benchmark:
        import agem.benchmarks

        builder = getattr(agem.benchmarks, builder_name)
        extra: dict[str, Any] = {}
        if train_subset is not None:
            if "train_subset" not in inspect.signature(builder).parameters:
                _no_subset(builder_name, train_subset)
            extra["train_subset"] = train_subset
        if fresh_subset:
            if "fresh_subset" not in inspect.signature(builder).parameters:
                raise ValueError(f"fresh_subset applies to permuted benchmarks, not {builder_name}")
            extra["fresh_subset"] = True
        return builder(
            n_experiences,
            seed=seed,
            task_labels=task_labels,
            root=data_dir,
            download=download,
            **extra,
        )

    return build


def _file_spec(name: str, experiences: int, dataset: str, description: str) -> BenchmarkSpec:
    return BenchmarkSpec(name, _from_files(name), experiences, description, dataset=dataset)


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
    "permuted_mnist": _file_spec(
        "permuted_mnist", 20, "mnist", "MNIST, one pixel permutation per experience"
    ),
    "permuted_fashion_mnist": _file_spec(
        "permuted_fashion_mnist",
        20,
        "fashion-mnist",
        "Fashion-MNIST, one pixel permutation per experience",
    ),
    "rotated_mnist": _file_spec(
        "rotated_mnist", 20, "mnist", "MNIST, one rotation (0-180 degrees) per experience"
    ),
    "split_mnist": _file_spec("split_mnist", 5, "mnist", "MNIST, two digits per experience"),
    "split_fashion_mnist": _file_spec(
        "split_fashion_mnist", 5, "fashion-mnist", "Fashion-MNIST, two classes per experience"
    ),
    "split_cifar10": _file_spec(
        "split_cifar10", 5, "cifar10", "CIFAR-10, two classes per experience"
    ),
    "split_cifar100": _file_spec(
        "split_cifar100", 20, "cifar100", "CIFAR-100, five classes per experience"
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
