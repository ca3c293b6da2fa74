"""The codecs in feeds/ are pure: of the project they import only feeds, geo, exchange.model and exchange.errors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PROJECT = ("adapters", "exchange", "feeds", "geo")
ALLOWED = ("feeds", "geo", "exchange.model", "exchange.errors")


def project_imports(path: Path) -> set[str]:
    """Every project module (or name in one) that ``path`` imports, at any depth of the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] in PROJECT}


@pytest.mark.parametrize("path", sorted((ROOT / "feeds").glob("*.py")), ids=lambda path: path.name)
def test_feeds_import_only_pure_modules(path: Path) -> None:
    refused = sorted(
        name for name in project_imports(path)
        if not any(name == allowed or name.startswith(f"{allowed}.") for allowed in ALLOWED)
    )
    assert refused == [], f"feeds/{path.name} imports {', '.join(refused)}"
