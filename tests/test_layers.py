"""The import direction of the code, checked on its syntax tree: a new upward import, a cycle, a private name
imported across modules or an unneeded lazy import fails here (and so in CI).

``api/`` is layered ``core -> cluster -> accounts -> realtime -> {readings, streams, messages} -> marketplace
-> pages -> {money, admin} -> app -> cli``: a package imports only from its own package and from the layers
before it, and the feature packages never import each other. ``relay/`` never imports ``billing/`` or ``api/``
(and touches no database); ``billing/`` never imports ``relay/``, ``api/`` or aiortc; ``config/`` imports none
of them.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("api", "billing", "relay", "config")

# api's layers, lowest first; packages on one layer are siblings and never import each other.
# The marketplace (profiles, reviews, search) shows what readings offer, so it stands on them. The cluster
# (Redis, the node registry, placement, shared limits) is what every feature above core may use.
API_LAYERS: list[set[str]] = [{"core"}, {"cluster"}, {"accounts"}, {"realtime"}, {"readings", "streams", "messages"},
                              {"marketplace"}, {"pages"}, {"money", "admin"}, {"app"}, {"cli"}]
# What each top-level package may import of ours besides itself.
ALLOWED_TOP = {"config": set(), "relay": {"config"}, "billing": {"config"}, "api": {"billing", "relay", "config"}}
# A late import is allowed only where it is optional at run time, and the line says so.
OPTIONAL_MARK = "optional at run time"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted (for "from a import b", b when a.b is a module)
    names: tuple[str, ...]
    line: int
    top_level: bool
    text: str


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    """A Python module or package, or a C extension's source (``relay/_wire.c``: a module once built)."""
    base = ROOT.joinpath(*dotted.split("."))
    return any(base.with_suffix(s).exists() for s in (".py", ".c")) or (base / "__init__.py").exists()


def imports(path: Path) -> Iterator[Import]:
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    top = set(map(id, tree.body))
    me = module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found = [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found = []
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append((sub, ()) if is_module(sub) else (node.module, (alias.name,)))
        else:
            continue
        for target, names in found:
            if target.split(".")[0] in OURS or target.split(".")[0] == "aiortc":
                yield Import(me, target, names, node.lineno, id(node) in top, lines[node.lineno - 1])


def sources() -> list[Path]:
    return sorted(p for package in OURS for p in (ROOT / package).rglob("*.py"))


def api_layer(dotted: str) -> tuple[int, str] | None:
    parts = dotted.split(".")
    if parts[0] != "api" or len(parts) < 2:
        return None
    for index, layer in enumerate(API_LAYERS):
        if parts[1] in layer:
            return index, parts[1]
    raise AssertionError(f"{dotted} is in no layer of api/: add its package to API_LAYERS")


def test_every_import_goes_down_the_layers() -> None:
    wrong = []
    for path in sources():
        for found in imports(path):
            mine, theirs = found.module.split(".")[0], found.target.split(".")[0]
            if theirs == "aiortc":
                if mine == "billing":
                    wrong.append(f"{found.module}:{found.line} billing imports aiortc")
                continue
            if mine != theirs and theirs not in ALLOWED_TOP[mine]:
                wrong.append(f"{found.module}:{found.line} {mine}/ imports {found.target}")
            here, there = api_layer(found.module), api_layer(found.target)
            if here is None or there is None or here[1] == there[1]:
                continue
            if there[0] > here[0] or (there[0] == here[0]):
                wrong.append(f"{found.module}:{found.line} imports {found.target} (layer {there[1]} is not below "
                             f"{here[1]})")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_a_private_name_of_another() -> None:
    """(A private module, such as the relay's compiled ``relay._wire``, is its package's own business.)"""
    wrong = [f"{found.module}:{found.line} imports {name} from {found.target}"
             for path in sources() for found in imports(path) for name in found.names
             if name.startswith("_") and found.target != found.module]
    assert not wrong, "\n".join(wrong)


def test_imports_are_at_the_top_unless_optional_at_run_time() -> None:
    wrong = [f"{found.module}:{found.line} {found.text.strip()}" for path in sources() for found in imports(path)
             if not found.top_level and OPTIONAL_MARK not in found.text]
    assert not wrong, "\n".join(wrong)
    for path in sources():  # third-party late imports say why
        tree = ast.parse(path.read_text())
        top = set(map(id, tree.body))
        lines = path.read_text().splitlines()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                if not _inside_type_checking(tree, node):
                    assert OPTIONAL_MARK in lines[node.lineno - 1], f"{path}:{node.lineno} is a late import"


def _inside_type_checking(tree: ast.Module, node: ast.AST) -> bool:
    return any(isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test) and node in ast.walk(stmt)
               for stmt in tree.body)


def test_there_is_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for path in sources():
        for found in imports(path):
            if found.target.split(".")[0] in OURS and found.target != found.module:
                graph.setdefault(found.module, set()).add(found.target)
    # A package's __init__ that re-exports its modules is not a cycle with them: an edge into a package
    # counts only when the importer is outside it.
    for module, targets in graph.items():
        graph[module] = {t for t in targets if not module.startswith(t + ".")}
    cycles = _cycles(graph)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
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
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checks_catch_an_upward_import_a_private_name_a_late_import_and_a_cycle(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {
        "api/__init__.py": "",
        "api/core/__init__.py": "",
        "api/core/keys.py": "from api.core import errors\n",
        "api/core/errors.py": "from api.core import keys\nfrom api.accounts.auth import _secret\n",
        "api/core/times.py": "def f():\n    from api.core import keys\n",
        "api/accounts/__init__.py": "",
        "api/accounts/auth.py": "_secret = 1\n",
        "api/readings/__init__.py": "",
        "api/readings/chat.py": "from api.streams import hub\n",
        "api/streams/__init__.py": "",
        "api/streams/hub.py": "",
        "relay/__init__.py": "from billing import ledger\n",
        "billing/__init__.py": "",
        "billing/ledger.py": "import aiortc\n",
        "config/__init__.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    with pytest.raises(AssertionError) as direction:
        test_every_import_goes_down_the_layers()
    for wrong in ("api.core.errors:2 imports api.accounts.auth", "api.readings.chat:1 imports api.streams.hub",
                  "relay/ imports billing.ledger", "billing imports aiortc"):
        assert wrong in str(direction.value)
    with pytest.raises(AssertionError, match=re.escape("imports _secret from api.accounts.auth")):
        test_no_module_imports_a_private_name_of_another()
    with pytest.raises(AssertionError, match=re.escape("api.core.times:2")):
        test_imports_are_at_the_top_unless_optional_at_run_time()
    with pytest.raises(AssertionError, match=re.escape("api.core.errors -> api.core.keys")):
        test_there_is_no_import_cycle()
