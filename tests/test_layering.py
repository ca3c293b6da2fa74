"""The layering of ../shared/DESIGN.md, read from the imports themselves (ast), so a wrong arrow fails here.

May import (besides itself and the standard library and third parties):

    exchange  -> adapters, feeds, geo
    adapters  -> feeds, geo, exchange.model, exchange.errors, exchange.config (its types)
    feeds     -> geo, exchange.model, exchange.errors
    geo       -> nothing of the project
    exchange.model, exchange.errors -> nothing of the project (the two leaves)

No installed package imports ``tests``, and no two modules import each other, directly or in a
cycle. Every import counts, also one inside a function or under ``TYPE_CHECKING``: a lazy import
is still an arrow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.support.paths import ROOT

PACKAGES = ("exchange", "adapters", "feeds", "geo")
PROJECT = (*PACKAGES, "tests", "bench")
LEAVES = ("exchange.model", "exchange.errors")
ALLOWED_OUTSIDE: Mapping[str, tuple[str, ...]] = {
    "exchange": ("adapters", "feeds", "geo"),
    "adapters": ("feeds", "geo", "exchange.model", "exchange.errors", "exchange.config"),
    "feeds": ("geo", "exchange.model", "exchange.errors"),
    "geo": (),
}


def module_sources(root: Path) -> dict[str, str]:
    """Module name -> source text of every module of the installed packages."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path.read_text(encoding="utf-8")
    return found


def imports_of(name: str, source: str, known: set[str]) -> Iterator[str]:
    """The project modules ``name`` imports: ``from a import b`` is ``a.b`` when that is a module."""
    is_package = name in known and any(other.startswith(name + ".") for other in known)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in PROJECT:
                yield target


def _within(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


def violations(sources: Mapping[str, str]) -> list[str]:
    """Every import against the layering, and every import cycle, one line each."""
    known = set(sources)
    graph: dict[str, set[str]] = {}
    found: list[str] = []
    for name, source in sources.items():
        package = name.split(".")[0]
        edges = graph.setdefault(name, set())
        for target in imports_of(name, source, known):
            top = target.split(".")[0]
            if top in ("tests", "bench"):
                found.append(f"{name} imports {target}: installed packages never import {top}/")
                continue
            if any(_within(name, leaf) for leaf in LEAVES) and not _within(target, name):
                found.append(f"{name} imports {target}: {name} is a leaf and imports nothing of the project")
            elif top != package and not any(_within(target, ok) for ok in ALLOWED_OUTSIDE[package]):
                found.append(f"{name} imports {target}: {package}/ may import only "
                             f"{', '.join(ALLOWED_OUTSIDE[package]) or 'nothing'} of the project")
            module = target
            while module not in known and "." in module:
                module = module.rsplit(".", 1)[0]
            if module in known and module != name:
                edges.add(module)
    found.extend(f"import cycle: {' -> '.join(cycle)}" for cycle in _cycles(graph))
    return found


def _cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_a_cycle(graph, set(component)) for component in components]


def _a_cycle(graph: Mapping[str, set[str]], members: set[str]) -> list[str]:
    """A path from the component's first module back to itself, staying inside the component."""
    start = min(members)
    path, seen = [start], {start}
    while True:
        node = path[-1]
        if start in graph[node] and len(path) > 1:
            return [*path, start]
        nxt = min((n for n in graph[node] if n in members and n not in seen), default=None)
        if nxt is None:  # dead end inside the component: report its members
            return [*sorted(members), start]
        path.append(nxt)
        seen.add(nxt)


# --------------------------------------------------------------------------- the project


def test_the_project_keeps_its_layering() -> None:
    sources = module_sources(ROOT)
    assert {"exchange.cli.main", "adapters.waze", "feeds.cifs", "geo.network"} <= set(sources)
    assert violations(sources) == []


# --------------------------------------------------------------------------- the checker itself


def test_a_wrong_arrow_fails() -> None:
    base = {
        "exchange": "", "exchange.model": "", "exchange.errors": "", "exchange.store": "",
        "exchange.config": "", "adapters": "", "feeds": "", "geo": "", "geo.crs": "",
        "adapters.waze": "from exchange.config import SourceConfig\nfrom exchange.model import Event\n",
        "feeds.waze": "from exchange.errors import MalformedPayload\nfrom geo.crs import MetricFrame\n",
    }
    assert violations(base) == []
    cases = {
        "geo.crs": ("import exchange.model\n", "geo/ may import only nothing"),
        "feeds.waze": ("from adapters import waze\n", "feeds/ may import only"),
        "feeds.cifs": ("def f():\n    from exchange.store import row_to_event\n", "feeds.cifs imports exchange.store"),
        "adapters.sinks": ("from exchange.publications import gzip_body\n", "adapters/ may import only"),
        "exchange.sync": ("if True:\n    from tests.support import synthetic\n", "never import tests/"),
        "exchange.model": ("from exchange.store import EventFilter\n", "is a leaf"),
    }
    for module, (source, expected) in cases.items():
        found = violations({**base, module: source})
        assert any(expected in line for line in found), (module, found)


def test_an_import_cycle_fails_and_is_named() -> None:
    sources = {
        "exchange": "", "exchange.cli": "from exchange.cli_serve import register\n",
        "exchange.cli_serve": "def f():\n    from exchange.cli import state\n",
        "exchange.a": "from . import b\n", "exchange.b": "from exchange import c\n",
        "exchange.c": "import exchange.a\n",
    }
    found = violations(sources)
    assert "import cycle: exchange.cli -> exchange.cli_serve -> exchange.cli" in found
    assert "import cycle: exchange.a -> exchange.b -> exchange.c -> exchange.a" in found
    assert violations({"exchange": "", "exchange.a": "import exchange.b\n", "exchange.b": ""}) == []
