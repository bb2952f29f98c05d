"""Refuse, before anything is allocated, sizes that cannot fit in this machine's memory.

Estimates (float32 inputs, parameters and their gradient and optimizer buffers) of what
the run's largest pieces will hold: the memory pieces its strategy's registry entry names
(the replay buffer, the episodic memory of A-GEM/GEM, ...), the model (for progressive
networks, all of its columns), and the LCA curves. A setting whose piece alone exceeds the
memory available fails with one line naming the flag. `check_sizes` needs the settings
only (a sweep checks every run with it before any starts); `check_fits` also the built
benchmark.
"""

from __future__ import annotations

import itertools
import os

from agem.benchmarks.streams import Benchmark
from agem.runs.config import RunConfig, flag
from agem.strategies.registry import get_strategy

FLOAT = 4
LCA_POINT = 32  # bytes per point of an LCA curve: a Python float in a list, and its JSON


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def estimates(config: RunConfig, benchmark: Benchmark) -> dict[str, tuple[int, str]]:
    """flag -> (bytes, what) for the pieces whose size a flag sets."""
    first = benchmark.train_stream[0]
    x = first.dataset[0][0]
    pattern = int(x.numel()) * FLOAT + 16  # input, label and task label
    n_train = max(len(e.dataset) for e in benchmark.train_stream)  # type: ignore[arg-type]
    out: dict[str, tuple[int, str]] = {}
    spec = get_strategy(config.strategy)
    options = config.to_dict()
    for piece in spec.memory:
        stored = piece.patterns(options, n_train, len(benchmark.train_stream))
        out[piece.option] = (stored * pattern, piece.what)
    if config.model == "mlp":
        sizes = [int(x.numel()), *config.hidden_sizes, max(benchmark.n_classes, 1)]
        params = sum(a * b + b for a, b in itertools.pairwise(sizes))
        if spec.progressive:  # one column per task, k lateral matrices in column k
            tasks = len(benchmark.train_stream)
            laterals = sum(a * b for a, b in itertools.pairwise(sizes[1:]))
            params = tasks * params + laterals * tasks * (tasks - 1) // 2
        # weights, gradients, optimizer buffers, and the method's flat gradient buffers
        copies = 3 + (2 if config.optimizer != "sgd" else 1)
        copies += spec.gradient_buffers
        out["hidden_sizes"] = (params * FLOAT * copies, "the model and its gradients")
    return out


def config_estimates(config: RunConfig) -> dict[str, tuple[int, str]]:
    """flag -> (bytes, what) for the pieces whose size the settings alone give."""
    out: dict[str, tuple[int, str]] = {}
    if config.lca_beta is not None:
        points = (config.lca_beta + 1) * (config.n_experiences or 1)
        out["lca_beta"] = (points * LCA_POINT, "the LCA curves")
    return out


def _refuse_large(
    config: RunConfig, pieces: dict[str, tuple[int, str]], available: int | None
) -> None:
    limit = available if available is not None else available_memory()
    if limit is None:
        return
    for name, (size, what) in pieces.items():
        if size > limit:
            value = getattr(config, name)
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
            raise ValueError(
                f"{flag(name)} {shown}: {what} would need about {_gib(size)}, "
                f"more than the {_gib(limit)} of memory available"
            )


def check_sizes(config: RunConfig, *, available: int | None = None) -> None:
    """Raise a one-line ValueError if a piece sized by the settings alone cannot fit."""
    _refuse_large(config, config_estimates(config), available)


def check_fits(config: RunConfig, benchmark: Benchmark, *, available: int | None = None) -> None:
    """Raise a one-line ValueError if one piece of the run cannot fit in memory."""
    _refuse_large(config, {**config_estimates(config), **estimates(config, benchmark)}, available)
