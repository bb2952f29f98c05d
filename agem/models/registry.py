"""The models a run can name (`agem run --model NAME`): the built-in ones, those an
installed package registers in the entry-point group `agem.models`, and import paths
`package.module:Class` (see `agem.importpath`).

A model of your own is a class (or a function returning an `nn.Module`) called with the
`--model-args` as keywords, plus those of `MODEL_KEYWORDS` it has a parameter for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agem.importpath import MODELS_GROUP, OwnCodeError, resolve

MODELS = ("mlp", "resnet18")
#: keywords a model of your own gets when it names them: the shape of one input, its
#: number of elements, and the number of outputs (classes, or per task with task labels)
MODEL_KEYWORDS = ("input_shape", "input_size", "num_classes")


def is_builtin(name: str) -> bool:
    """Whether `name` is a built-in model (mlp, resnet18)."""
    return name in MODELS


def get_model(name: str) -> Callable[..., Any]:
    """The class (or function) a model that is not built in names: an entry point of
    `agem.models` or an import path (a one-line OwnCodeError if neither, or not callable)."""
    found = resolve(name, group=MODELS_GROUP, option="--model", builtins=MODELS)
    if not callable(found):
        kind = type(found).__name__
        raise OwnCodeError(f"--model {name} is not a class or function (it is of type {kind})")
    return found
