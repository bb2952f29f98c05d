"""The documentation stands on its own and states the callback order the code follows."""

from __future__ import annotations

import re
from pathlib import Path

from agem.core.hooks import EVAL_HOOKS, TRAIN_HOOKS

ROOT = Path(__file__).resolve().parent.parent
TEXT = (".py", ".md", ".toml", ".txt", ".cfg", ".yml", ".yaml")
# built from parts so that this file does not contain what it looks for
FORBIDDEN = re.compile(r"\b" + "SP" + r"EC\b|(?i:\b" + "is" + r"sue\s*#?\s*\d+)")


def _files() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "pyproject.toml"]
    for folder in ("agem", "tests", "scripts", "docs", ".ci"):
        found += [p for p in (ROOT / folder).rglob("*") if p.is_file()]
    return [p for p in found if p.suffix in TEXT or p.parent.name == ".ci"]


def test_no_reference_to_documents_outside_the_repository() -> None:
    hits = []
    for path in _files():
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)


def _numbered_hooks(section: str) -> list[str]:
    return re.findall(r"^\d+\. `(\w+)`", section, flags=re.M)


def test_architecture_lists_the_callback_order_and_the_contract() -> None:
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    assert "## Callback order" in doc and "## Plugin contract" in doc
    order = doc.split("## Callback order", 1)[1].split("## Plugin contract", 1)[0]
    train_part, eval_part = order.split("`BaseTemplate.eval(", 1)
    assert _numbered_hooks(train_part) == list(TRAIN_HOOKS)
    assert _numbered_hooks(eval_part) == list(EVAL_HOOKS)
    contract = doc.split("## Plugin contract", 1)[1]
    for hook in TRAIN_HOOKS:
        assert f"| `{hook}`" in contract, hook  # every training hook says what it may change


def test_architecture_names_every_package_and_its_layer() -> None:
    """docs/ARCHITECTURE.md names each package and top-level module of agem/."""
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    package = ROOT / "agem"
    names = [p.name for p in package.iterdir() if p.is_dir() and any(p.glob("*.py"))]
    names += [p.name for p in package.glob("*.py") if p.name != "__init__.py"]
    missing = [n for n in sorted(names) if f"agem/{n}" not in doc]
    assert not missing, f"docs/ARCHITECTURE.md does not name {missing}"
