"""Named benchmark builders, as used by the command line.

Each entry maps a name to a builder called as
`builder(n_experiences=..., seed=..., data_dir=..., download=..., task_labels=...,
train_subset=..., fresh_subset=..., args=...)`;
entries that do not use an argument ignore it. `get` also finds a benchmark of your own:
a function returning a `Benchmark`, registered by an installed package in the entry-point
group `agem.benchmarks` or given as an import path `package.module:function` (see
`agem.importpath`). It is called with the `--benchmark-args` as keywords, plus those of
`BENCHMARK_KEYWORDS` it has a parameter for.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agem.benchmarks import digits
from agem.benchmarks.streams import Benchmark
from agem.importpath import (
    BENCHMARKS_GROUP,
    OwnCodeError,
    accepted,
    call,
    check_arguments,
    resolve,
)


@dataclass(frozen=True)
class BenchmarkSpec:
    """How to build a named benchmark, and what it needs."""

    name: str
    build: Callable[..., Benchmark]
    default_experiences: int | None  # None: as many as the benchmark built has
    description: str
    offline: bool = False
    dataset: str | None = None  # the files it reads, for `agem datasets`
    own: bool = False  # a benchmark of your own (its length is checked once built)


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


#: run options a benchmark of your own gets when it has a parameter of that name
BENCHMARK_KEYWORDS = (
    "n_experiences",
    "seed",
    "task_labels",
    "data_dir",
    "download",
    "train_subset",
    "fresh_subset",
)
_PLUGGED: dict[str, tuple[BenchmarkSpec, Callable[..., Any]]] = {}


def get(name: str) -> BenchmarkSpec:
    """The spec of benchmark `name`: a built-in one, or a function of your own (an entry
    point of `agem.benchmarks` or an import path); else a ValueError listing the choices."""
    if name in BENCHMARKS:
        return BENCHMARKS[name]
    return _plugged(name)[0]


def _plugged(name: str) -> tuple[BenchmarkSpec, Callable[..., Any]]:
    """(the spec, the function) of a benchmark of your own, resolved once."""
    if name not in _PLUGGED:
        function = resolve(
            name, group=BENCHMARKS_GROUP, option="--benchmark", builtins=sorted(BENCHMARKS)
        )
        _PLUGGED[name] = (_plugged_spec(name, function), function)
    return _PLUGGED[name]


def check_benchmark_arguments(name: str, args: Mapping[str, Any] | None) -> None:
    """Raise a one-line ValueError unless benchmark `name` takes `args` (built-in: none)."""
    if name in BENCHMARKS:
        if args:
            raise OwnCodeError(
                f"--benchmark-args applies to a benchmark of your own, not --benchmark {name}"
            )
        return
    check_arguments(_plugged(name)[1], args or {}, BENCHMARK_KEYWORDS, what=f"--benchmark {name}")


def _plugged_spec(name: str, function: Callable[..., Any]) -> BenchmarkSpec:
    """A spec that calls `function` as a benchmark of your own."""
    if not callable(function):
        kind = type(function).__name__
        raise OwnCodeError(f"--benchmark {name} is not a function (it is of type {kind})")
    taken = accepted(function, BENCHMARK_KEYWORDS)
    default = None
    required = False  # a function that needs n_experiences and has no default for it
    if "n_experiences" in taken:
        value = inspect.signature(function).parameters["n_experiences"].default
        default = value if isinstance(value, int) and not isinstance(value, bool) else None
        required = value is inspect.Parameter.empty

    def build(*, args: Mapping[str, Any] | None = None, **options: Any) -> Benchmark:
        for option in ("train_subset", "fresh_subset"):
            if options.get(option) and option not in taken:
                raise OwnCodeError(f"--benchmark {name} takes no {option}")
        if options.get("n_experiences") is None:
            if required and "n_experiences" not in (args or {}):
                raise OwnCodeError(f"--benchmark {name} needs --n-experiences (no default)")
            options.pop("n_experiences", None)  # its own default
        built = call(function, args or {}, options, what=f"--benchmark {name}")
        if not isinstance(built, Benchmark):
            raise OwnCodeError(
                f"--benchmark {name} returned a {type(built).__name__}, not an "
                "agem.benchmarks.Benchmark (see agem.benchmarks.from_tensors)"
            )
        return built

    return BenchmarkSpec(name, build, default, f"{name} (your own)", own=True)
