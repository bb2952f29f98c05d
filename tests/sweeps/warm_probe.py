"""`python -m tests.sweeps.warm_probe [--pollute] [--patch] [--sleep] OUT`: write the
process-wide state a run could depend on to OUT (JSON); with --pollute, change all of it
first (as a careless run would), with --patch, monkey-patch torch; with --sleep, then
wait a minute (a run to kill). The warm-worker tests compare a fresh interpreter's state
with a warm one's."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sys
import time
import warnings

import torch
import torch.nn.functional

DEFAULT_SEED = 67280421310721


def _patched_relu(x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    return x


def pollute() -> None:
    torch.manual_seed(123)
    torch.set_default_dtype(torch.float64)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = True
    torch.set_float32_matmul_precision("medium")
    torch.set_num_threads(3)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    os.chdir("/")
    os.environ["AGEM_PROBE"] = "polluted"
    logging.basicConfig(level=logging.DEBUG)
    warnings.simplefilter("ignore")
    sys.path.insert(0, "/nonexistent")
    random.seed(5)


def patch() -> None:
    """What a run could do that no worker can undo: change a module."""
    torch.nn.functional.relu = _patched_relu  # type: ignore[assignment]


def state() -> dict[str, object]:
    relu = torch.nn.functional.relu
    fixed = torch.initial_seed() == DEFAULT_SEED
    return {
        # torch seeds its global RNG with DEFAULT_SEED, or (recent versions) at random
        "seed": "default" if fixed else "random",
        "rand": torch.rand(3).tolist() if fixed else None,
        "threads": torch.get_num_threads(),
        "dtype": str(torch.get_default_dtype()),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "matmul_precision": torch.get_float32_matmul_precision(),
        "handlers": {
            s.name: repr(signal.getsignal(s))
            for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGPIPE)
        },
        "cwd": os.getcwd(),
        "environ": sorted(os.environ.items()),
        "logging": [len(logging.root.handlers), logging.root.level],
        "warnings": len(warnings.filters),
        "path": sys.path[1:],
        "relu": f"{relu.__module__}.{relu.__qualname__}",
        "main": __name__,
        "stdin": os.read(0, 10).decode(errors="replace"),
        "python_random_differs": random.random() != random.Random(5).random(),
        "torch_seed_differs": torch.initial_seed() != 123,
    }


def main(argv: list[str]) -> int:
    out = [a for a in argv if not a.startswith("--")][-1]
    if "--pollute" in argv:
        pollute()
    if "--patch" in argv:
        patch()
    with open(out, "w") as handle:
        json.dump(state(), handle)
    print(f"probe wrote {out}", flush=True)
    if "--sleep" in argv:
        time.sleep(60)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
