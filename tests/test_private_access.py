"""Nothing in one package of `agem/` touches the private names of another: no `x._name`
(x other than self/cls) of an attribute that only another package defines, and no import
of another package's `_name`."""

from __future__ import annotations

import ast
from pathlib import Path

import agem

PACKAGE = Path(agem.__file__).parent


def _package(root: Path, path: Path) -> str:
    parts = path.relative_to(root).parts
    return parts[0].removesuffix(".py") if parts else ""


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")


def private_reach_ins(root: Path) -> list[str]:
    """Each cross-package private access, as "file:line: what"."""
    trees = {p: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(root.rglob("*.py"))}
    defined: dict[str, set[str]] = {}  # private attribute name -> packages that define it
    for path, tree in trees.items():
        for node in ast.walk(tree):
            names = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                owner = node.value
                if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                    names = [node.attr]
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names = [node.id]
            for name in filter(_private, names):
                defined.setdefault(name, set()).add(_package(root, path))
    found = []
    for path, tree in trees.items():
        here = _package(root, path)
        where = path.relative_to(root.parent)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                owner = node.value
                if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                    continue
                if here not in defined.get(node.attr, {here}):
                    found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                source = node.module.split(".")[1] if "." in node.module else ""
                for alias in node.names:
                    if _private(alias.name) and source != here:
                        found.append(f"{where}:{node.lineno}: import {alias.name}")
    return found


def test_no_package_touches_another_packages_private_names() -> None:
    assert private_reach_ins(PACKAGE) == []


def test_a_planted_reach_in_is_found(tmp_path: Path) -> None:
    (tmp_path / "agem" / "core").mkdir(parents=True)
    (tmp_path / "agem" / "fleet").mkdir()
    core = tmp_path / "agem" / "core" / "template.py"
    core.write_text("class T:\n    def __init__(self):\n        self._hooks = {}\n")
    fleet = tmp_path / "agem" / "fleet" / "fleet.py"
    fleet.write_text("from agem.core.template import _x\n\ndef f(m):\n    return m._hooks\n")
    assert private_reach_ins(tmp_path / "agem") == [
        "agem/fleet/fleet.py:1: import _x",
        "agem/fleet/fleet.py:4: m._hooks",
    ]
