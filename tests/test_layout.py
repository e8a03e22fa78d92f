"""The package's shape, held by tests: small parts, SQL only in store/, the layers kept apart.

These read the source (Python's own parser), so they cost nothing and fail the
moment a change breaks a rule the README's "How it is built" promises.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "voice_journal"
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 60


@functools.cache
def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"), str(p))) for p in sorted(PACKAGE.rglob("*.py"))]


def _name(p: Path) -> str:
    return str(p.relative_to(PACKAGE.parent))


def test_no_class_over_300_lines_and_no_function_over_60():
    too_long = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            limit = (MAX_CLASS_LINES if isinstance(node, ast.ClassDef)
                     else MAX_FUNCTION_LINES if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None)
            if limit is not None and node.end_lineno - node.lineno + 1 > limit:
                too_long.append(f"{_name(path)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not too_long, too_long


def _imports(tree: ast.Module, path: Path) -> set[str]:
    """The package modules ``tree`` imports, as dotted names under voice_journal."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                found.add(".".join([*base, *(node.module.split(".") if node.module else [])]))
            elif node.module:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("voice_journal")}


# The crossings left, and why: the training commands of the crisis net and of the questions
# about the companion (run by a developer, never by a session) load the sentence encoder the
# journal's search uses, which lives in store/; at run time both are handed that encoder's embed
# function by the session core.
ALLOWED_CROSSINGS = {("voice_journal/companion/safety/train.py", "voice_journal.store.embedding"),
                     ("voice_journal/companion/itself/train.py", "voice_journal.store.embedding")}


def test_the_archive_and_the_companion_never_import_each_other():
    """The archive returns data, the companion interprets it (insights, rumination, memory)."""
    crossing = []
    for path, tree in _modules():
        layer = path.relative_to(PACKAGE).parts[0]
        other = {"store": "voice_journal.companion", "companion": "voice_journal.store"}.get(layer)
        if other:
            crossing += [(_name(path), m) for m in _imports(tree, path) if m.startswith(other)]
    assert set(crossing) <= ALLOWED_CROSSINGS, crossing


@pytest.mark.parametrize("call", ["execute", "executemany", "sql", "connect"])
def test_sql_and_connections_live_only_in_store(call):
    """No module outside store/ runs SQL or opens DuckDB (``duckdb.connect``); the CLI least of all."""
    outside = []
    for path, tree in _modules():
        if path.relative_to(PACKAGE).parts[0] == "store":
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == call
                    and not _is_other_connect(node)):
                outside.append(f"{_name(path)}:{node.lineno} .{call}()")
    assert not outside, outside


def test_duckdb_is_imported_only_in_store():
    outside = [_name(path) for path, tree in _modules()
               if path.relative_to(PACKAGE).parts[0] != "store" and "duckdb" in _plain_imports(tree)]
    assert not outside, outside


def _plain_imports(tree: ast.Module) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out


def _is_other_connect(node: ast.Call) -> bool:
    """``socket.connect(...)`` and the like are not a database (a Wyoming or Ollama client's socket)."""
    if node.func.attr != "connect":
        return False
    target = node.func.value
    return not (isinstance(target, ast.Name) and target.id == "duckdb")
