"""Runtime defaults that depend on the model and the device: the CPU thread count.

Measured on this project's benchmarks (see the thread rule in README.md): a small MLP
trained with minibatches of 10 does so little work per operation that torch's intra-op
thread pool costs more than it saves; one thread was several times faster than torch's
default on a busy 2-core machine, and never slower on an idle one. Convolutional or large
models do enough work per operation for threads to pay off, so they keep torch's default.
"""

from __future__ import annotations

import torch
from torch import nn

#: Models up to this many parameters, without convolutions, train on one CPU thread.
SMALL_MODEL_PARAMETERS = 5_000_000

_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def default_threads(model: nn.Module, device: torch.device | str) -> int | None:
    """The CPU thread count to train `model` on `device` with, or None for torch's default.

    One thread for a model without convolutions and with at most
    `SMALL_MODEL_PARAMETERS` parameters trained on the CPU (the MLPs of the MNIST-like
    benchmarks); None (torch's default) otherwise: convolutional or large models, and
    GPU training, where the CPU threads are not the bottleneck. An explicit `--threads`
    always wins over this rule.
    """
    if torch.device(device).type != "cpu":
        return None
    if any(isinstance(m, _CONVOLUTIONS) for m in model.modules()):
        return None
    n_parameters = sum(p.numel() for p in model.parameters())
    return 1 if n_parameters <= SMALL_MODEL_PARAMETERS else None


def apply_threads(threads: int | None, model: nn.Module, device: torch.device | str) -> int:
    """Set torch's CPU threads: `threads` if given, else `default_threads`; return the count."""
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        torch.set_num_threads(threads)
    else:
        chosen = default_threads(model, device)
        if chosen is not None:
            torch.set_num_threads(chosen)
    return torch.get_num_threads()
