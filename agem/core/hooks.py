"""The callback names, in the order the template fires them, and the one dispatcher."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

TRAIN_HOOKS: tuple[str, ...] = (
    "before_training",
    "before_train_dataset_adaptation",
    "after_train_dataset_adaptation",
    "before_training_exp",
    "before_training_epoch",
    "before_training_iteration",
    "before_forward",
    "after_forward",
    "before_backward",
    "after_backward",
    "before_update",
    "after_update",
    "after_training_iteration",
    "after_training_epoch",
    "after_training_exp",
    "after_training",
)

EVAL_HOOKS: tuple[str, ...] = (
    "before_eval",
    "before_eval_dataset_adaptation",
    "after_eval_dataset_adaptation",
    "before_eval_exp",
    "before_eval_iteration",
    "before_eval_forward",
    "after_eval_forward",
    "after_eval_iteration",
    "after_eval_exp",
    "after_eval",
)

ALL_HOOKS: tuple[str, ...] = TRAIN_HOOKS + EVAL_HOOKS

HookTable = dict[str, tuple[Callable[..., Any], ...]]


def build_hook_table(plugins: Sequence[Any], base: type) -> HookTable:
    """For each hook, the bound methods of the plugins that override it, in plugin order.

    Plugins that keep a hook as `base`'s no-op are left out, so an iteration pays only
    for the hooks that do something.
    """
    table: HookTable = {}
    for name in ALL_HOOKS:
        default = getattr(base, name)
        table[name] = tuple(
            getattr(p, name)
            for p in plugins
            if getattr(type(p), name, default) is not default or name in vars(p)
        )
    return table


def fire(table: HookTable, hook: str, strategy: Any, kwargs: dict[str, Any]) -> None:
    """Call `hook` on every plugin that implements it: `plugin.<hook>(strategy, **kwargs)`."""
    for method in table[hook]:
        method(strategy, **kwargs)
