"""The code's architecture, checked: no import cycles, jobs independent, one owner per contract.

Imports are read from the source (no module is executed). A module-level import runs when
its module is imported, so a cycle of them is a real import-time cycle; an import inside a
function runs later, and is allowed only where :data:`LAZY_IMPORTS` says why.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "plankton_store"
JOBS = REPO_ROOT / "jobs"

#: Imports of package modules made inside functions, and why they cannot be at the top.
LAZY_IMPORTS = {
    ("plankton_store.io._images", "plankton_store.io._computed"): "scipy loads only "
    "when features are computed",
    ("plankton_store.ml._keras", "plankton_store.ml._keras_layers"): "registers our layers "
    "once Keras is imported",
    ("plankton_store.ml._nets", "plankton_store.ml._keras_layers"): "Keras loads only when "
    "a net is built",
    ("plankton_store.ml._large", "plankton_store.ml._keras_layers"): "Keras loads only "
    "when a net is built",
    ("plankton_store.ml._models", "plankton_store.report"): "matplotlib loads only when a "
    "history is plotted",
    ("plankton_store.cluster._local", "plankton_store.cluster._jobqueue"): "dask-jobqueue "
    "loads only for a batch-scheduler cluster",
    ("plankton_store.report._evaluation", "plankton_store.report._plots"): "matplotlib",
    ("plankton_store.report._explore", "plankton_store.report._plots"): "matplotlib",
    ("plankton_store.report._abundance", "plankton_store.report._plots"): "matplotlib",
}

#: Subpackages in dependency order: each may import only those before it.
LAYERS = ("cluster", "io", "demo", "store", "report", "ml")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    return {module_name(p): p for p in sorted(root.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> list[tuple[str, bool]]:
    """``(imported module, at module level)`` for every import of a module in ``known``.

    ``from package import submodule`` counts as an import of the submodule.
    """
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in known
                else node.module
                for alias in node.names
            ]
        else:
            continue
        found += [(name, id(node) in top) for name in names if name in known]
    return found


def graph(eager_only: bool) -> dict[str, set[str]]:
    known = modules(PACKAGE)
    return {
        name: {target for target, eager in imports(path, set(known)) if eager or not eager_only}
        - {name}
        for name, path in known.items()
    }


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_inside_the_package():
    assert find_cycle(graph(eager_only=True)) is None


def test_imports_inside_functions_are_the_listed_lazy_ones():
    known = set(modules(PACKAGE))
    lazy = {
        (name, target)
        for name, path in modules(PACKAGE).items()
        for target, eager in imports(path, known)
        if not eager and target != name
    }
    assert lazy - set(LAZY_IMPORTS) == set(), "import at the top, or list it with a reason"
    # Even counting the lazy ones, the only cycle is the Keras layers' registration.
    edges = graph(eager_only=False)
    edges["plankton_store.ml._keras"].discard("plankton_store.ml._keras_layers")
    assert find_cycle(edges) is None


def subpackage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_subpackages_import_only_lower_layers():
    wrong = []
    for name, targets in graph(eager_only=False).items():
        here = subpackage(name)
        for target in targets:
            there = subpackage(target)
            if here and there and LAYERS.index(there) > LAYERS.index(here):
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_no_job_imports_another_job_and_the_library_imports_no_job():
    job_modules = {name for name in modules(JOBS) if not name.split(".")[-1].startswith("_")}
    job_modules -= {"jobs", "jobs.cli"}  # the package and the command group load jobs lazily
    everything = {**modules(JOBS), **modules(PACKAGE)}
    for name, path in everything.items():
        for target, _ in imports(path, job_modules | {"jobs"}):
            assert name == "jobs.cli", f"{name} imports the job {target}"


def test_the_cli_lists_every_job_module():
    from jobs.cli import COMMANDS

    listed = {target.split(":")[0] for target in COMMANDS.values()}
    job_modules = {
        name
        for name in modules(JOBS)
        if not name.split(".")[-1].startswith("_") and name not in ("jobs", "jobs.cli")
    }
    assert listed == job_modules


def source_lines(root: Path, skip: set[str]) -> list[tuple[str, int, str]]:
    """``(module, line number, line)`` of every code line (not docstrings or comments)."""
    out = []
    for name, path in modules(root).items():
        if name in skip:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            number
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
            for number in range(node.body[0].lineno, node.body[0].end_lineno + 1)
        }
        for number, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("#") or number in docstrings:
                continue
            out.append((name, number, line))
    return out


#: Each contract's literals and the one module allowed to spell them. Store attributes are
#: read and written through :class:`plankton_store.store.format.Attr`, never by a literal key.
CONTRACTS = {
    "store attribute key": (
        r"""attrs(\.get)?\s*[\[(]\s*f?["']|ROOT_ATTRS_KEY\]\s*\[\s*f?["']""",
        {"plankton_store.store.format"},
    ),
    "MODEL_DIR file name": (
        r"""["'](model\.json|model\.keras|model\.skops|head\.skops|history\.csv|"""
        r"""history\.png)["']""",
        {"plankton_store.ml._modeldir"},
    ),
    "export layout name": (
        r"""["'](meta\.csv|imgs\.zip|imgs|taxo\.csv|flowcam|image-folder|ecotaxa|"""
        r"""ecotaxa_predictions\.tsv)["']""",
        {"plankton_store.io._layout"},
    ),
}


@pytest.mark.parametrize("contract", sorted(CONTRACTS))
def test_each_contract_is_spelt_in_its_owner_module_only(contract):
    pattern, skip = CONTRACTS[contract]
    found = [
        f"{name}:{number}: {line.strip()}"
        for name, number, line in source_lines(PACKAGE, skip) + source_lines(JOBS, skip)
        if re.search(pattern, line)
    ]
    assert found == []


#: Longest module, and function (its docstring not counted), in lines, before a split is due.
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        if isinstance(first.value.value, str):
            return first.end_lineno - first.lineno + 1
    return 0


def test_modules_and_functions_stay_small():
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")) + sorted(JOBS.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{module_name(path)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1 - _docstring_lines(node)
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{module_name(path)}.{node.name}: {length} lines")
    assert too_long == []
