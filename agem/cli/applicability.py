"""Which `agem run` options apply to which strategy and model, for the command line's
warning when a flag is given that the chosen run ignores (e.g. `--mem-size` with naive).
Which strategy reads which option is the strategy registry's (`agem.strategies.registry`)."""

from __future__ import annotations

from collections.abc import Iterable

from agem.runs.config import RunConfig, flag
from agem.strategies.registry import readers

#: option -> the models that read it
MODEL_OPTIONS: dict[str, tuple[str, ...]] = {"hidden_sizes": ("mlp",)}


def ignored_options(config: RunConfig, given: Iterable[str]) -> list[str]:
    """One message per option in `given` (field names set explicitly) that `config`'s run
    does not use, e.g. "--mem-size does not apply to --strategy naive (ignored)"."""
    messages = []
    for name in given:
        strategies = readers(name)
        if strategies and config.strategy not in strategies:
            messages.append(
                f"{flag(name)} does not apply to --strategy {config.strategy} (ignored; "
                f"it is read by {', '.join(strategies)})"
            )
        elif name == "decay_factor" and config.ewc_mode != "online":
            messages.append("--decay-factor applies to --ewc-mode online only (ignored)")
        models = MODEL_OPTIONS.get(name)
        if models is not None and config.model not in models:
            messages.append(f"{flag(name)} does not apply to --model {config.model} (ignored)")
        if name.startswith("wandb_") and "wandb" not in config.logger_names():
            messages.append(f"{flag(name)} applies with --logger wandb (or +wandb) (ignored)")
        if name == "lca_test_size" and config.lca_beta is None:
            messages.append("--lca-test-size does not apply with --no-lca (ignored)")
    return messages
