"""The pure core depends on nothing at the edges (style: pure core, IO at the edges)."""

import ast
from pathlib import Path

import pytest

import clickloop

SRC = Path(clickloop.__file__).parent
PURE = ["core", "simulator", "strategies"]
EDGES = (
    "clickloop.experiment",
    "clickloop.report",
    "clickloop.cli",
    "clickloop.llm.llamacpp",
    "clickloop.llm.openai_compat",
    "clickloop.llm.cache",
    "clickloop.llm.models",
    "clickloop.llm.registry",
    "clickloop.service",
)
IO_MODULES = (
    "sqlite3",
    "psycopg",
    "psycopg_pool",
    "tqdm",
    "matplotlib",
    "click",
    "openai",
    "xllamacpp",
    "httpx",
    "subprocess",
)


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", [p for pkg in PURE for p in sorted((SRC / pkg).rglob("*.py"))], ids=str)
def test_pure_packages_import_no_adapters(path):
    bad = {name for name in imports(path) if name.startswith(EDGES) or name.split(".")[0] in IO_MODULES}
    assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


def test_public_api_is_exported():
    for name in clickloop.__all__:
        assert hasattr(clickloop, name), name
    assert sorted(clickloop.__all__) == sorted(set(clickloop.__all__))
