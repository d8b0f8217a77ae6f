"""The package's layers point one way: core <- batch engine <- command line.

Imports are read from the source (module level and inside functions; not ``if
TYPE_CHECKING:`` blocks, which never run), so a cycle or an upward import fails here before
it confuses a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "odiqueue"
#: Each layer, by where its modules live, and what it may import. ``testing`` is the
#: emulator: a separate program that shares only the core's models and switches.
LAYERS = {
    "core": set(),
    "batch": {"core"},
    "cli": {"core", "batch", "testing"},
    "testing": {"core"},
    "top": {"core", "batch", "cli", "testing"},
}
#: The one import the rules allow from the core into the engine, inside a function only:
#: ``generate_many`` builds a batch in the method, so the core never needs the engine to load.
ALLOWED_UPWARD = {("odiqueue._client", "odiqueue._batch")}


def layer_of(module: str) -> str:
    """The layer a module of the package belongs to."""
    parts = module.split(".")
    if module in ("odiqueue", "odiqueue.__main__"):
        return "top"
    if parts[1] == "_batch":
        return "batch"
    if parts[1] == "_cli":
        return "cli"
    if parts[1] == "testing":
        return "testing"
    return "core"


def module_name(path: Path) -> str:
    """``odiqueue/_batch/_engine.py`` -> ``odiqueue._batch._engine``."""
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> dict[str, bool]:
    """The package modules ``path`` imports, each with whether the import is at module level."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: dict[str, bool] = {}

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking_only(child):
                for other in child.orelse:
                    visit(other, top)
                continue
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # "from odiqueue import _wire" imports the module odiqueue._wire; "from
                # odiqueue._x import name" imports odiqueue._x.
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    names.append(sub if _existing(sub) == sub else base)
            for name in names:
                if name.startswith("odiqueue"):
                    target = _existing(name)
                    if target and target != module:
                        found[target] = found.get(target, False) or top
            inner = top and not isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return found


def _existing(name: str) -> str | None:
    """The longest prefix of ``name`` that is a module or package of ours."""
    parts = name.split(".")
    while parts:
        candidate = PACKAGE.parent.joinpath(*parts)
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return None


def graph() -> dict[str, dict[str, bool]]:
    """Every module of the package and what it imports."""
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_import_goes_up_a_layer() -> None:
    """The core imports neither the engine nor the command line; the engine never imports
    the command line; the emulator only the core."""
    wrong = []
    for module, targets in graph().items():
        mine = layer_of(module)
        for target, top in targets.items():
            theirs = layer_of(target)
            allowed = theirs == mine or theirs in LAYERS[mine]
            if not allowed and (top or (module, target) not in ALLOWED_UPWARD):
                wrong.append(f"{module} ({mine}) imports {target} ({theirs})")
    assert wrong == []


def test_the_one_upward_import_is_inside_a_function() -> None:
    """``generate_many``'s import of the engine runs only when it is called."""
    imports = graph()["odiqueue._client"]
    assert imports.get("odiqueue._batch") is False


def test_no_import_cycles() -> None:
    """Following imports (module level or inside functions) never leads back to where it
    started (a module importing its own package is not a cycle)."""
    edges = {
        module: {t for t in targets if not module.startswith(t + ".")}
        for module, targets in graph().items()
    }
    cycles = []
    state: dict[str, int] = {}

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                walk(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            walk(node, [node])
    assert cycles == []


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("from odiqueue._batch._engine import Batch\n", "odiqueue._batch._engine"),
        ("def f():\n    from odiqueue._cli import main\n", "odiqueue._cli"),
        ("from odiqueue import _cli\n", "odiqueue._cli"),
    ],
)
def test_the_checker_sees_upward_imports(tmp_path: Path, source: str, bad: str) -> None:
    """The reader finds module-level, function-level and ``from odiqueue import`` forms."""
    fake = PACKAGE / "_layer_probe_tmp.py"
    fake.write_text(source, encoding="utf-8")
    try:
        assert bad in imports_of(fake)
    finally:
        fake.unlink()


def test_the_checker_skips_type_checking_blocks() -> None:
    """An import under ``if TYPE_CHECKING:`` is for the type checker only."""
    fake = PACKAGE / "_layer_probe_tmp2.py"
    fake.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from odiqueue._batch import Batch\n",
        encoding="utf-8",
    )
    try:
        assert imports_of(fake) == {}
    finally:
        fake.unlink()
