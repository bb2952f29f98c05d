"""`Plugin`: the base class of every method, with one documented no-op per hook.

A plugin overrides the hooks it needs; the template calls only overridden hooks, as
`plugin.<hook>(strategy, **kwargs)`, where kwargs are those given to `train()` or
`eval()`. Plugins run in ascending `order` (a class or instance attribute, default 0);
ties keep the order in which they were given.

What a hook may change on the strategy, in short: `before_forward` the minibatch
(`mbatch`, `mb_x`, `mb_y`, `mb_task_id`), `after_forward` the output (`mb_output`) and
the minibatch, `before_backward` the `loss`, `after_backward` the parameters' gradients.
Everything else is read-only by convention. docs/ARCHITECTURE.md lists the callback
order and, hook by hook, the state set when it fires and what it may change.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Any

from agem.core.hooks import ALL_HOOKS

_HOOK_PREFIXES = ("before_", "after_")


class Plugin:
    """Base class for plugins: every hook of the template as a no-op.

    `strategy` is the `BaseTemplate` that fires the hook. It is typed `Any` here because
    the template is built on this class (it sits above it); a subclass names the type it
    reads, e.g. `BaseTemplate`.
    """

    order: int = 0
    # True when the plugin's in-step hooks (before_training_iteration .. after_update) may
    # be captured in a CUDA graph: they run once, at capture, and must only queue device
    # work on tensors that stay in place (no host reads, no Python state per step).
    graph_safe: bool = False
    # True when the plugin's in-step hooks never backpropagate through `strategy.loss`:
    # they may add to the loss as a value, and change the gradients only in place in the
    # parameters' `.grad` (after_backward). A fleet (`agem.fleet`), which does every
    # member's forward and backward in one batched pass, fires such hooks per member.
    gradient_only: bool = False

    def __new__(cls, *args: Any, **kwargs: Any) -> Plugin:
        # In __new__ so that subclasses need not call super().__init__().
        _check_hook_names(cls)
        return super().__new__(cls)

    def state_dict(self) -> dict[str, Any]:
        """The plugin's state to checkpoint (override when the plugin has any)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    def check_state_dict(self, state: dict[str, Any]) -> None:
        """Raise a ValueError if `state` does not fit this plugin; change nothing.

        Called before any part of a checkpoint is loaded, so that a checkpoint of another
        configuration is refused while everything is still as it was.
        """

    # ---- training -------------------------------------------------------------
    def before_training(self, strategy: Any, **kwargs: Any) -> None:
        """Called once at the start of `train()`."""

    def before_train_dataset_adaptation(self, strategy: Any, **kwargs: Any) -> None:
        """Called before the experience's training data is adapted (e.g. merged with a buffer)."""

    def after_train_dataset_adaptation(self, strategy: Any, **kwargs: Any) -> None:
        """Called after `strategy.adapted_dataset` is set for the experience."""

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Called before the first epoch on an experience; the model is already adapted."""

    def before_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        """Called at the start of each epoch."""

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        """Called at the start of each minibatch; gradients are already cleared (None)."""

    def before_forward(self, strategy: Any, **kwargs: Any) -> None:
        """Called before `model(mb_x)`; may replace the minibatch."""

    def after_forward(self, strategy: Any, **kwargs: Any) -> None:
        """Called after the forward pass; `mb_output` is set and may be changed."""

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        """Called before `loss.backward()`; may change `strategy.loss`."""

    def after_backward(self, strategy: Any, **kwargs: Any) -> None:
        """Called after `loss.backward()`; may change the parameters' gradients."""

    def before_update(self, strategy: Any, **kwargs: Any) -> None:
        """Called before `optimizer.step()`."""

    def after_update(self, strategy: Any, **kwargs: Any) -> None:
        """Called after `optimizer.step()`."""

    def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        """Called at the end of each minibatch."""

    def after_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        """Called at the end of each epoch."""

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Called after the last epoch on an experience (e.g. to update a memory)."""

    def after_training(self, strategy: Any, **kwargs: Any) -> None:
        """Called once at the end of `train()`."""

    # ---- evaluation -----------------------------------------------------------
    def before_eval(self, strategy: Any, **kwargs: Any) -> None:
        """Called once at the start of `eval()`, in no-grad eval mode."""

    def before_eval_dataset_adaptation(self, strategy: Any, **kwargs: Any) -> None:
        """Called before the experience's evaluation data is adapted."""

    def after_eval_dataset_adaptation(self, strategy: Any, **kwargs: Any) -> None:
        """Called after `strategy.adapted_dataset` is set for the evaluated experience."""

    def before_eval_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Called before the first minibatch of an evaluated experience."""

    def before_eval_iteration(self, strategy: Any, **kwargs: Any) -> None:
        """Called at the start of each evaluation minibatch."""

    def before_eval_forward(self, strategy: Any, **kwargs: Any) -> None:
        """Called before the evaluation forward pass; may replace the minibatch."""

    def after_eval_forward(self, strategy: Any, **kwargs: Any) -> None:
        """Called after the evaluation forward pass; `mb_output` is set."""

    def after_eval_iteration(self, strategy: Any, **kwargs: Any) -> None:
        """Called at the end of each evaluation minibatch."""

    def after_eval_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Called after the last minibatch of an evaluated experience."""

    def after_eval(self, strategy: Any, **kwargs: Any) -> None:
        """Called once at the end of `eval()`; train/eval mode is restored after it."""


def _check_hook_names(plugin_cls: type) -> None:
    """Warn about methods that look like hooks but match none (a typo guard)."""
    for cls in plugin_cls.__mro__:
        if cls is Plugin or cls is object:
            continue
        for name in vars(cls):
            if name.startswith(_HOOK_PREFIXES) and name not in ALL_HOOKS:
                close = difflib.get_close_matches(name, ALL_HOOKS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                warnings.warn(
                    f"{cls.__name__}.{name} is not a hook and will never be called{hint}",
                    stacklevel=3,  # the line that constructs the plugin
                )


def sort_plugins(plugins: list[Any]) -> list[Any]:
    """Plugins in ascending `order`; ties keep the given order (a stable sort)."""
    return sorted(plugins, key=lambda p: getattr(p, "order", 0))


def check_settings(plugin: str, saved: Any, current: dict[str, Any]) -> None:
    """Raise a ValueError naming the first setting where a checkpoint's `saved` settings
    differ from the plugin's `current` ones (checkpoints without settings pass)."""
    if saved is None:
        return
    if not isinstance(saved, dict):
        raise ValueError(f"checkpoint {plugin} settings are malformed")
    for key, value in current.items():
        if key in saved and saved[key] != value:
            raise ValueError(
                f"checkpoint {plugin} state was made with {key}={saved[key]!r}; "
                f"this {plugin} has {key}={value!r}"
            )
