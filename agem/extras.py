"""Optional dependencies (pip extras): import them only when their feature is asked for.

The core install stays light; GEM's quadratic-program solver, Weights & Biases and Ray
are extras. Asking for a feature whose extra is missing raises `MissingExtraError`, whose
message is one line naming the pip command, e.g. ``pip install -e '.[gem]'`` in agem's
source folder (agem is not on the public package index, so ``pip install 'agem[gem]'``
would not find it).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


class MissingExtraError(ImportError):
    """A feature needs an optional dependency that is not installed (one-line message)."""


@dataclass(frozen=True)
class Extra:
    """One pip extra: the module it provides and what it is for."""

    name: str
    module: str
    feature: str


EXTRAS: dict[str, Extra] = {
    "gem": Extra("gem", "quadprog", "GEM (--strategy gem)"),
    "wandb": Extra("wandb", "wandb", "the Weights & Biases logger (--logger wandb)"),
    "ray": Extra("ray", "ray", "the Ray sweep engine"),
}


def install_hint(extra: str) -> str:
    """The pip command that installs `extra` (from agem's source folder)."""
    return f"pip install -e '.[{extra}]' in agem's source folder"


def require(extra: str) -> ModuleType:
    """Import and return the module of `extra`; `MissingExtraError` if it is not installed."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; choose one of: {', '.join(sorted(EXTRAS))}")
    spec = EXTRAS[extra]
    try:
        return importlib.import_module(spec.module)
    except ImportError as err:
        why = (
            "which is not installed"
            if err.name == spec.module or err.name is None
            else f"which fails to import ({' '.join(str(err).split())})"
        )
        raise MissingExtraError(
            f"{spec.feature} needs the {spec.module} package, {why}: {install_hint(extra)}"
        ) from err
