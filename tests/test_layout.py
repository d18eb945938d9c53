"""The package's layout stays the pipeline: no import circles, no private names borrowed across
packages, no module of 600 lines or more, and a start-up that loads no numeric stack.

Imports are read from the source, including those inside functions; only ``if TYPE_CHECKING:``
blocks are left out, since they never run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).parent.parent / "sagasim"
MAX_LINES = 600
#: What ``import sagasim`` and ``sagasim --help`` must not load.
HEAVY = ("simpy", "numpy", "scipy", "matplotlib")


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (s for child in node.orelse for s in _statements_of(child))
            continue
        yield from _statements_of(node)


def _statements_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    else:
        yield from _statements(node)


def imports(module: str) -> Iterator[tuple[str, str, int]]:
    """``(imported module, name, line)`` for each sagasim name ``module`` imports; ``name`` is
    empty for a whole module."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _statements(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "sagasim":
                    yield alias.name, "", node.lineno
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join([*base, *([node.module] if node.module else [])])
        else:
            target = node.module or ""
        if target.split(".")[0] != "sagasim":
            continue
        for alias in node.names:
            submodule = f"{target}.{alias.name}"
            if submodule in MODULES:
                yield submodule, "", node.lineno
            else:
                yield target, alias.name, node.lineno


def import_graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(MODULES)
    for module in MODULES:
        for target, _, _ in imports(module):
            graph.add_edge(module, target)
    return graph


def _package(module: str) -> str:
    """The stage a module belongs to: ``sagasim.sim.run`` -> ``sagasim.sim``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def test_every_import_names_a_module_of_the_package() -> None:
    for module in MODULES:
        for target, _, line in imports(module):
            assert target in MODULES, f"{MODULES[module]}:{line}: no module {target}"


def test_there_are_no_import_circles() -> None:
    cycles = sorted(nx.simple_cycles(import_graph()), key=len)
    assert not cycles, f"import circles, shortest first: {cycles[:3]}"


def test_the_stages_import_one_way() -> None:
    stages = nx.DiGraph()
    for module, target in import_graph().edges:
        if _package(module) != _package(target):
            stages.add_edge(_package(module), _package(target))
    assert nx.is_directed_acyclic_graph(stages), list(nx.simple_cycles(stages))


def test_the_model_imports_nothing_but_its_errors() -> None:
    for module in MODULES:
        if _package(module) == "sagasim.model":
            outside = {t for t, _, _ in imports(module) if _package(t) != "sagasim.model"}
            assert outside <= {"sagasim.exceptions"}, (module, outside)


def test_no_private_name_is_borrowed_from_another_package() -> None:
    borrowed = [
        f"{MODULES[module]}:{line}: {target}.{name}"
        for module in MODULES
        for target, name, line in imports(module)
        if name.startswith("_") and not name.endswith("__") and _package(target) != _package(module)
    ]
    assert not borrowed


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_is_under_600_lines(module: str) -> None:
    lines = MODULES[module].read_text().count("\n")
    assert lines < MAX_LINES, f"{MODULES[module]} has {lines} lines"


def test_the_pipeline_has_its_packages() -> None:
    packages = {_name(path.parent) for path in PACKAGE.glob("*/__init__.py")}
    stages = ("model", "io", "interop", "machine", "verify", "analysis", "sim", "viz", "plot")
    assert {f"sagasim.{stage}" for stage in stages} <= packages


def test_the_guard_sees_a_circle_and_a_function_level_import() -> None:
    # the checks above are only worth something if they would catch what they look for
    source = "def f():\n    from .machine import compile_saga\n"
    tree = ast.parse(source)
    found = list(_statements(tree))
    assert len(found) == 1 and isinstance(found[0], ast.ImportFrom)
    hidden = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import sim\n"
    assert [type(n) for n in _statements(ast.parse(hidden))] == [ast.ImportFrom]
    graph = import_graph()
    graph.add_edge("sagasim.model.saga", "sagasim.viz.render")
    assert list(nx.simple_cycles(graph))


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parent,
    )
    return {name.split(".")[0] for name in result.stdout.split()}


def test_import_sagasim_loads_no_numeric_stack() -> None:
    loaded = _loaded_after("import sagasim")
    assert "sagasim" in loaded
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_help_loads_no_numeric_stack() -> None:
    code = (
        "import contextlib, io\n"
        "from sagasim.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "    main(['check', '--help'])\n"
    )
    loaded = _loaded_after(code)
    assert "argparse" in loaded
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


@pytest.mark.parametrize("model", ["order_fulfillment", "order_fulfillment_under_load"])
def test_simulate_loads_only_what_it_runs_on(model: str) -> None:
    # a plain simulate, report included, needs numpy and SimPy: no scipy, plotting or graphs
    code = (
        "import contextlib, io\n"
        "from sagasim.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main(['simulate', 'models/{model}.yaml', '--runs', '1'])\n"
        f"    main(['simulate', 'models/{model}.yaml', '--runs', '1', '--json'])\n"
    )
    loaded = _loaded_after(code)
    assert {"numpy", "simpy"} <= loaded
    unneeded = {"scipy", "matplotlib", "pandas", "networkx", "graphviz"}
    assert not loaded & unneeded, loaded & unneeded


def test_the_probe_sees_a_heavy_import() -> None:
    assert "numpy" in _loaded_after("import sagasim\nsagasim.simulate")
