"""The core's folders are the pipeline's stages, and each imports only from the stages below it."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "delaynir"

#: Bottom to top. A module may import from its own layer and the layers before it, never after it; the
#: package's ``__init__`` (the public API, lazy) and ``__main__`` sit above all.
LAYERS = (
    "errors",
    "common",
    "plugins",
    "ir",
    "numerics",
    "reference",
    "hardware",
    "data",
    "nn",
    "train",
    "compile",
    "export",
    "handoff",
    "cli",
)


def _layer(module: str) -> int:
    """The layer of ``delaynir.<first>...``: its folder, or its own name for a top-level module."""
    first = module.split(".")[1] if "." in module else ""
    return LAYERS.index(first) if first in LAYERS else len(LAYERS)


def _module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported delaynir module, at module level) for every import of ``path`` that runs: imports
    under ``if TYPE_CHECKING:`` are for annotations only and left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    found = []
    for scope_level, node in [(True, n) for n in tree.body] + [(False, n) for n in ast.walk(tree)]:
        if id(node) in skipped or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if not scope_level and node in tree.body:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif node.module == "delaynir":
            names = [f"delaynir.{a.name}" for a in node.names if a.name != "__version__"]
        else:
            names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
        found += [(node.lineno, n, scope_level) for n in names if n.startswith("delaynir.")]
    return found


def _core_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(CORE.rglob("*.py"))}


def test_each_stage_imports_only_the_stages_below_it():
    upward = []
    for name, path in _core_modules().items():
        if name in ("delaynir", "delaynir.__main__"):
            continue
        for line, imported, _ in _imports(path):
            if imported.startswith(("delaynir.converters", "delaynir.targets")):
                upward.append(
                    f"{name}:{line} imports {imported} (the core reaches those through delaynir.plugins "
                    "and the executor registry)"
                )
            elif _layer(imported) > _layer(name):
                upward.append(f"{name}:{line} imports {imported} from a higher stage")
    assert not upward, "\n".join(upward)


def test_no_import_cycle_at_module_level():
    modules = _core_modules()
    graph = {
        # a module's own parent packages are initialised before it in any case: no edge to them
        name: {i for _, i, top in _imports(path) if top and i in modules and not f"{name}.".startswith(f"{i}.")}
        for name, path in modules.items()
    }
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_the_layer_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import delaynir.cli.x\n"
        "def f():\n    from delaynir.handoff import verify\n"
    )
    assert [(i, top) for _, i, top in _imports(module)] == [
        ("delaynir.handoff", False),
        ("delaynir.handoff.verify", False),
    ]
    assert _layer("delaynir.handoff.verify") > _layer("delaynir.ir.graph")


def test_every_package_of_the_tree_is_installed():
    """pyproject.toml lists packages by name (package-dir maps converters/ and targets/ under delaynir), so a new
    folder left out of the list would be missing from a wheel install while an editable install still works."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    root = CORE.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in CORE.rglob("__init__.py")}
    found |= {
        "delaynir." + ".".join(p.parent.relative_to(root).parts)
        for folder in ("converters", "targets")
        for p in (root / folder).rglob("__init__.py")
    }
    assert found == listed
