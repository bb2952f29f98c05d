"""`Naive`: plain fine-tuning, the lower bound every method is compared with."""

from __future__ import annotations

from agem.core.captured_step import CapturableTemplate


class Naive(CapturableTemplate):
    """Fine-tune on each experience in turn with no protection against forgetting.

    Same arguments as `BaseTemplate`, plus `cuda_graph` (see `agem.core.captured_step`):
    `Naive(model, optimizer, *, criterion=None, train_mb_size, train_epochs,
    eval_mb_size, device, plugins, evaluator, seed, cuda_graph=False)`.
    """
