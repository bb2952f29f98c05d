"""The layer contract of `agem/`: imports point down only, and no module imports itself
back through others. Imports inside functions (and under TYPE_CHECKING) count too."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import agem

PACKAGE = Path(agem.__file__).parent
# top to bottom; a module may import its own layer and those below it
LAYERS = (
    ("cli", "__main__"),
    ("sweeps",),
    ("runs",),
    ("fleet",),
    ("strategies",),
    ("plugins",),
    ("core",),
    ("benchmarks", "models", "metrics", "reporting"),
    ("data",),
    ("atomic", "bounded", "exiting", "extras", "forked", "importpath", "runtime", "version"),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[tuple[str, int]]]:
    """module -> {(imported agem module, line)}, from every import statement in the file."""
    modules = {module_name(root, p): p for p in root.rglob("*.py")}
    graph: dict[str, set[tuple[str, int]]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.level else [node.module or ""])
                source = source.rstrip(".")
                targets = [f"{source}.{a.name}" for a in node.names]
                targets = [t if t in modules else source for t in targets]
            else:
                continue
            edges.update((t, node.lineno) for t in targets if t.split(".")[0] == root.name)
    return graph


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # None: the package root


def upward_imports(root: Path) -> list[str]:
    """Each import that points up (or into the package root), as "a:line -> b"."""
    found = []
    for module, edges in import_graph(root).items():
        source = layer(module)
        for target, line in sorted(edges):
            if source is None:
                continue  # the package root re-exports the public API
            up = layer(target) is None or RANK[layer(target)] < RANK[source]  # type: ignore[index]
            if up:
                found.append(f"{module}:{line} -> {target}")
    return found


def import_cycles(root: Path) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others."""
    graph = {m: {t for t, _ in edges} for m, edges in import_graph(root).items()}

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reached = {m: reach(m) for m in graph}
    groups = {frozenset(n for n in reached[m] if m in reached[n]) for m in graph if m in reached[m]}
    return sorted(sorted(g) for g in groups)


def test_every_package_has_a_layer() -> None:
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()}
    names = {n for n in names if not n.startswith("_") or n == "__main__"} - {"__init__"}
    names = {n for n in names if (PACKAGE / n).is_dir() or (PACKAGE / f"{n}.py").is_file()}
    assert names - set(RANK) == set()


def test_imports_point_down_only() -> None:
    assert upward_imports(PACKAGE) == []


def test_no_import_cycle() -> None:
    assert import_cycles(PACKAGE) == []


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "agem"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "data"))
    return copy


def test_a_planted_upward_import_inside_a_function_is_found(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    clock = copy / "core" / "clock.py"
    clock.write_text(clock.read_text() + "\n\ndef f():\n    from agem.cli.main import main\n")
    assert upward_imports(copy) == [
        f"agem.core.clock:{len(clock.read_text().splitlines())} -> agem.cli.main"
    ]


def test_a_planted_cycle_is_found(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    clock = copy / "core" / "clock.py"
    clock.write_text(clock.read_text() + "\nfrom agem.core import template  # noqa\n")
    cycles = import_cycles(copy)
    assert cycles and all("agem.core.clock" in group for group in cycles)
    assert upward_imports(copy) == []  # same layer: only the cycle tells
