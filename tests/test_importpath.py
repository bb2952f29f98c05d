"""Import paths and entry points (`agem.importpath`): what a value means, how a plugin's
arguments ride along, which offered keywords a constructor gets, and one-line errors."""

from __future__ import annotations

import re
from typing import Any

import pytest

from agem import importpath
from agem.importpath import (
    OwnCodeError,
    accepted,
    call,
    check_arguments,
    load,
    parse_object,
    plugin_text,
    short_name,
    split_plugin,
)
from agem.models import MLP


def _exactly(text: str) -> str:
    return f"^{re.escape(text)}$"


def test_a_path_names_the_object_and_a_short_name_is_its_last_part() -> None:
    assert load("agem.models:MLP", option="--model") is MLP
    assert load("agem.models.mlp:MLP.forward", option="--model") is MLP.forward
    assert short_name("tests_pkg.mod:make") == "make"
    assert short_name("pkg.mod:Outer.Inner") == "Inner"
    assert short_name("permuted_digits") == "permuted_digits"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "agem.models:",
            "--model 'agem.models:': an import path is written package.module:Attribute",
        ),
        ("no_such_module_x:A", "--model no_such_module_x:A: no module named 'no_such_module_x'"),
        ("agem.no_such:A", "--model agem.no_such:A: no module named 'agem.no_such'"),
        (
            "agem.models:Nope",
            "--model agem.models:Nope: module agem.models has no attribute 'Nope'",
        ),
    ],
)
def test_what_cannot_be_loaded_is_one_line(path: str, message: str) -> None:
    with pytest.raises(OwnCodeError) as caught:
        load(path, option="--model")
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_module_that_fails_to_import_says_why(tmp_path: Any, monkeypatch: Any) -> None:
    (tmp_path / "broken_mod_x.py").write_text("import no_such_dependency_x\n")
    (tmp_path / "raising_mod_x.py").write_text("raise RuntimeError('bad\\nsecond line')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        OwnCodeError,
        match=_exactly(
            "--model broken_mod_x:A: importing broken_mod_x failed: "
            "No module named 'no_such_dependency_x'"
        ),
    ):
        load("broken_mod_x:A", option="--model")
    with pytest.raises(
        OwnCodeError,
        match=_exactly(
            "--model raising_mod_x:A: importing raising_mod_x failed: RuntimeError: bad"
        ),
    ):
        load("raising_mod_x:A", option="--model")


def test_a_plugin_value_carries_its_arguments_canonically() -> None:
    assert split_plugin("a.b:C") == ("a.b:C", {})
    assert split_plugin('a.b:C:{"y": 1, "x": "u:v"}') == ("a.b:C", {"y": 1, "x": "u:v"})
    assert plugin_text("a.b:C", {"y": 1, "x": 2}) == 'a.b:C:{"x": 2, "y": 1}'
    assert plugin_text(*split_plugin(plugin_text("a.b:C", {"x": [1]}))) == 'a.b:C:{"x": [1]}'
    for bad in ("a.b", "a.b:", ":C", "a.b:C:[1]", "a.b:C:{x}"):
        with pytest.raises(OwnCodeError):
            split_plugin(bad)


def test_only_a_json_object_is_arguments() -> None:
    assert parse_object('{"hidden": 512}', option="--model-args") == {"hidden": 512}
    for bad in ("[1]", "3", "{", ""):
        with pytest.raises(OwnCodeError, match=r"^--model-args must be a JSON object"):
            parse_object(bad, option="--model-args")


def _net(input_size: int, num_classes: int, hidden: int = 4, **extra: Any) -> dict[str, Any]:
    return {"input_size": input_size, "num_classes": num_classes, "hidden": hidden, **extra}


def test_offered_keywords_go_to_named_parameters_only_and_arguments_win() -> None:
    offered = {"input_size": 64, "num_classes": 10, "input_shape": (64,)}
    assert accepted(_net, offered) == ("input_size", "num_classes")  # not through **extra
    assert call(_net, {"hidden": 8}, offered, what="--model m:n") == {
        "input_size": 64,
        "num_classes": 10,
        "hidden": 8,
    }
    assert call(_net, {"num_classes": 3}, offered, what="--model m:n")["num_classes"] == 3


def test_arguments_a_constructor_cannot_take_are_refused_before_it_is_called() -> None:
    with pytest.raises(OwnCodeError) as caught:
        check_arguments(
            MLP, {"hiden": 3}, ("input_size", "num_classes"), what="--model agem.models:MLP"
        )
    assert str(caught.value) == (
        '--model agem.models:MLP cannot take the arguments {"hiden": 3}: '
        "got an unexpected keyword argument 'hiden'"
    )

    def needs(path: str) -> None: ...

    with pytest.raises(
        OwnCodeError, match=_exactly("--plugin m:P: missing a required argument: 'path'")
    ):
        check_arguments(needs, {}, (), what="--plugin m:P")
    with pytest.raises(OwnCodeError, match="not a class or function"):
        check_arguments(3, {}, (), what="--plugin m:P")  # type: ignore[arg-type]


def test_an_unknown_name_lists_the_choices_and_the_registered_names() -> None:
    with pytest.raises(OwnCodeError) as caught:
        importpath.resolve(
            "nobody_registers_this", group="agem.models", option="--model", builtins=("mlp",)
        )
    assert str(caught.value).startswith(
        "--model must be one of mlp, a name registered in the entry"
    )
    assert str(caught.value).endswith("got 'nobody_registers_this'")
