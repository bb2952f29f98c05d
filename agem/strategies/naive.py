"""`Naive`: plain fine-tuning, the lower bound every method is compared with."""

from __future__ import annotations

from agem.template import BaseTemplate


class Naive(BaseTemplate):
    """Fine-tune on each experience in turn with no protection against forgetting.

    Same arguments as `BaseTemplate`:
    `Naive(model, optimizer, *, criterion=None, train_mb_size, train_epochs,
    eval_mb_size, device, plugins, evaluator, seed)`.
    """
