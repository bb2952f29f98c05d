"""Your own code in a run: an import path `package.module:Attribute`, or a name that an
installed package registers as an entry point.

`--model`, `--benchmark` and `--strategy` take a built-in name, a name registered in the
entry-point group `agem.models`, `agem.benchmarks` or `agem.strategies` (read only when
the name is not built in, so a plain run never scans the installed packages), or an
import path; `--plugin` takes an import path. Everything here fails with a one-line
`OwnCodeError` (a `ValueError`) that names the option: a missing module, a missing
attribute, a module that fails to import, arguments that the constructor does not take.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MODELS_GROUP = "agem.models"
BENCHMARKS_GROUP = "agem.benchmarks"
STRATEGIES_GROUP = "agem.strategies"

_NAME = r"[A-Za-z_]\w*"
_DOTTED = rf"{_NAME}(?:\.{_NAME})*"
_PATH = re.compile(rf"({_DOTTED}):({_DOTTED})")


class OwnCodeError(ValueError):
    """Code of your own that a run names cannot be used as given (one-line message)."""


def is_import_path(text: str) -> bool:
    """Whether `text` is written as an import path `module:attribute` (not a name)."""
    return ":" in text


def short_name(text: str) -> str:
    """The attribute of an import path ("pkg.mod:make" -> "make"), else `text` itself:
    for folder names."""
    return text.rpartition(":")[2].rpartition(".")[2] if is_import_path(text) else text


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def load(path: str, *, option: str) -> Any:
    """The object at import path `path` ("package.module:Attribute", the attribute maybe
    dotted), importing its module."""
    match = _PATH.fullmatch(path)
    if match is None:
        raise OwnCodeError(f"{option} {path!r}: an import path is written package.module:Attribute")
    module_name, attribute = match.groups()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = err.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise OwnCodeError(
                f"{option} {path}: no module named {missing!r} (install its package, or put "
                "the folder that holds it on PYTHONPATH)"
            ) from err
        raise OwnCodeError(f"{option} {path}: importing {module_name} failed: {err}") from err
    except Exception as err:  # the module's own code failed: say so in one line
        raise OwnCodeError(
            f"{option} {path}: importing {module_name} failed: {_first_line(err)}"
        ) from err
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise OwnCodeError(
                f"{option} {path}: module {module_name} has no attribute {attribute!r}"
            ) from None
    return found


def registered_names(group: str) -> tuple[str, ...]:
    """The names installed packages register in the entry-point group `group`."""
    from importlib.metadata import entry_points

    return tuple(sorted({ep.name for ep in entry_points(group=group)}))


_LOADED: dict[tuple[str, str], Any] = {}


def _entry_point(group: str, name: str, option: str) -> Any:
    """The object of the entry point `name` of `group` (loaded once), or None."""
    if (group, name) in _LOADED:
        return _LOADED[group, name]
    from importlib.metadata import entry_points

    found = sorted(entry_points(group=group, name=name), key=lambda ep: ep.value)
    if not found:
        return None
    if len({ep.value for ep in found}) > 1:
        values = ", ".join(ep.value for ep in found)
        raise OwnCodeError(
            f"{option} {name}: several installed packages register it in {group} "
            f"({values}); give the import path instead"
        )
    try:
        _LOADED[group, name] = found[0].load()
    except Exception as err:  # the package's own code failed
        raise OwnCodeError(
            f"{option} {name}: loading {found[0].value} (entry point of {group}) failed: "
            f"{_first_line(err)}"
        ) from err
    return _LOADED[group, name]


def resolve(name: str, *, group: str, option: str, builtins: Iterable[str]) -> Any:
    """The object that `name` (not a built-in name) stands for: an import path's, or the
    entry point `name` of `group` (loaded once); a one-line OwnCodeError listing the
    choices when it is neither."""
    if is_import_path(name):
        return load(name, option=option)
    found = _entry_point(group, name, option) if name else None
    if found is None:
        registered = registered_names(group)
        listed = f" ({', '.join(registered)})" if registered else ""
        raise OwnCodeError(
            f"{option} must be one of {', '.join(builtins)}, a name registered in the entry"
            f" points {group}{listed}, or an import path package.module:Attribute;"
            f" got {name!r}"
        )
    return found


def parse_object(text: str, *, option: str) -> dict[str, Any]:
    """A JSON object given as text (`--model-args '{"hidden": 512}'`)."""
    bad = OwnCodeError(f"{option} must be a JSON object like '{{\"hidden\": 512}}', got {text!r}")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise bad from None
    if not isinstance(value, dict):
        raise bad
    return value


def split_plugin(text: str) -> tuple[str, dict[str, Any]]:
    """("package.module:Class", its keyword arguments) from a `--plugin` value,
    `package.module:Class` or `package.module:Class:{"every": 2}` (a JSON object)."""
    module, _, rest = text.partition(":")
    attribute, colon, arguments = rest.partition(":")
    path = f"{module}:{attribute}"
    if _PATH.fullmatch(path) is None:
        raise OwnCodeError(
            f"--plugin {text!r}: write package.module:Class, or package.module:Class:JSON "
            "with its keyword arguments as a JSON object"
        )
    if not colon:
        return path, {}
    return path, parse_object(arguments, option=f"--plugin {path}: its arguments")


def plugin_text(path: str, arguments: Mapping[str, Any]) -> str:
    """The `--plugin` value of `path` with `arguments` (canonical: sorted keys)."""
    if not arguments:
        return path
    return f"{path}:{json.dumps(dict(arguments), sort_keys=True, separators=(', ', ': '))}"


def accepted(factory: Callable[..., Any], offered: Iterable[str]) -> tuple[str, ...]:
    """Those of the keyword names `offered` that `factory` has a parameter for (a
    parameter, not a `**kwargs`: agem passes what it knows only when asked by name)."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return ()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(n for n in offered if n in parameters and parameters[n].kind in kinds)


def check_arguments(
    factory: Callable[..., Any], arguments: Mapping[str, Any], offered: Iterable[str], *, what: str
) -> None:
    """Raise a one-line OwnCodeError unless `factory` can be called with `arguments` plus
    the keywords of `offered` that it names (e.g. a missing or an unknown argument)."""
    if not callable(factory):
        raise OwnCodeError(f"{what} is a {type(factory).__name__}, not a class or function")
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # a builtin without a signature: its call will tell
    given = {**{n: None for n in accepted(factory, offered)}, **arguments}
    try:
        signature.bind(**given)
    except TypeError as err:
        if not arguments:
            raise OwnCodeError(f"{what}: {err}") from None
        shown = json.dumps(dict(arguments), sort_keys=True)
        raise OwnCodeError(f"{what} cannot take the arguments {shown}: {err}") from None


def call(
    factory: Callable[..., Any],
    arguments: Mapping[str, Any],
    offered: Mapping[str, Any],
    *,
    what: str,
) -> Any:
    """`factory(**arguments, **offered keywords it names)`, its arguments checked first
    (`arguments` win over `offered`)."""
    check_arguments(factory, arguments, offered, what=what)
    names = accepted(factory, offered)
    return factory(**{**{n: offered[n] for n in names}, **arguments})
