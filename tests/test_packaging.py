"""The wheel holds the production packages only: no tests, no benchmarks, no test kits.

The wheel is built from a copy of the checkout (so no stale ``build/`` of an earlier build can leak
into it, and nothing is written into the checkout), with the backend installed in this environment
(``setuptools``, from the ``test`` extra) and no index: a few seconds, offline.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.paths import ROOT

PACKAGES = {"adapters", "exchange", "feeds", "geo"}
#: what the checkout holds besides the packages, and must never ship
NOT_SHIPPED = ("tests", "bench", "fixtures", "config")
TEST_KITS = {"synthetic.py", "fixturegen.py"}

_SKIP_ANYWHERE = shutil.ignore_patterns(".*", "__pycache__", "*.egg-info", "*.pyc")
_SKIP_AT = {ROOT: {"build", "dist"}, ROOT / "bench": {"out"}}


def _ignore(directory: str, names: list[str]) -> set[str]:
    """Hidden files (``.git``, ``.venv``, caches), byte code, egg-info and earlier build output."""
    return set(_SKIP_ANYWHERE(directory, names)) | (_SKIP_AT.get(Path(directory), set()) & set(names))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("packaging")
    source, out = work / "source", work / "wheels"
    shutil.copytree(ROOT, source, ignore=_ignore)
    command = [
        sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
        "--check-build-dependencies", "--no-index", "--disable-pip-version-check", "--quiet", "-w", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    wheels = sorted(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_wheel_holds_the_production_packages_and_nothing_else(wheel: Path) -> None:
    names = _names(wheel)
    top = {name.split("/", 1)[0] for name in names}
    dist_info = {entry for entry in top if entry.endswith(".dist-info")}
    assert len(dist_info) == 1, top
    assert top - dist_info == PACKAGES
    assert {f"{package}/__init__.py" for package in PACKAGES} <= set(names)
    assert not [name for name in names if name.startswith(tuple(f"{d}/" for d in NOT_SHIPPED))]
    assert not [name for name in names if name.rsplit("/", 1)[-1] in TEST_KITS]


def _imported_roots(source: bytes, filename: str) -> set[str]:
    """Top-level names of every absolute import in a module, function-level imports included."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".", 1)[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".", 1)[0])
    return roots


def test_shipped_code_never_imports_tests_or_bench(wheel: Path) -> None:
    offenders: dict[str, set[str]] = {}
    with zipfile.ZipFile(wheel) as archive:
        modules = [name for name in archive.namelist() if name.endswith(".py")]
        assert modules
        for name in modules:
            wrong = _imported_roots(archive.read(name), name) & {"tests", "bench"}
            if wrong:
                offenders[name] = wrong
    assert offenders == {}
