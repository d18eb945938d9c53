"""The notebooks in notebooks/ run top to bottom in a real Jupyter kernel, and are committed clean.

Each notebook asserts what it claims, so executing it is the test. The kernel inherits
``SAGASIM_RUNS`` from this process, which keeps the simulations small.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat import NotebookNode

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
RUNS = "3000"


def _execute(book: NotebookNode) -> NotebookNode:
    """Run ``book`` in place, in the repository root, as ``jupyter nbconvert --execute`` would."""
    client = NotebookClient(
        book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()
    return book


def test_the_notebooks_are_found() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb",
        "02_failure_injection.ipynb",
        "03_design_choices.ipynb",
        "04_branching_sagas.ipynb",
        "05_many_sagas.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebooks_have_no_outputs(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    code = [cell for cell in book.cells if cell.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    for index, cell in enumerate(code):
        assert cell.outputs == [], f"{path.name}: code cell {index} has outputs"
        assert cell.execution_count is None, f"{path.name}: code cell {index} has a count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_read_the_run_count_from_the_environment(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    source = "\n".join(cell.source for cell in book.cells if cell.cell_type == "code")
    assert 'RUNS = int(os.environ.get("SAGASIM_RUNS", "20000"))' in source


@pytest.mark.slow
def test_the_kernel_runs_this_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """``python3`` must resolve to the interpreter running the tests (the venv's), or the
    notebooks would import some other sagasim, or none."""
    monkeypatch.setenv("SAGASIM_RUNS", RUNS)
    book = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "import os, sys; print(sys.prefix, os.environ['SAGASIM_RUNS'])"
            )
        ]
    )
    output = _execute(book).cells[0].outputs[0]
    assert output.text.split() == [sys.prefix, RUNS]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_without_errors(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGASIM_RUNS", RUNS)
    book = _execute(nbformat.read(path, as_version=4))
    errors = [
        output
        for cell in book.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors, f"{path.name}: {errors[0].ename}: {errors[0].evalue}"
    executed = [cell.execution_count for cell in book.cells if cell.cell_type == "code"]
    assert None not in executed, f"{path.name}: not every code cell ran"
    # a cell that ends by showing a figure shows a picture, not the figure's repr
    showing = [c for c in book.cells if c.cell_type == "code" and c.source.endswith("\nfig")]
    assert showing, f"{path.name} shows no figure"
    for cell in showing:
        kinds = {k for output in cell.outputs for k in output.get("data", {})}
        assert "image/png" in kinds, f"{path.name}: {cell.source[:60]!r} drew no image"


@pytest.mark.slow
def test_a_saga_shows_as_its_diagram_in_a_notebook() -> None:
    """The model has no ``_repr_svg_``; importing sagasim registers its SVG with IPython."""
    book = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "import sagasim\nsagasim.load('models/order_fulfillment.yaml')"
            ),
            nbformat.v4.new_code_cell("sagasim.load('models/order_fulfillment.yaml').steps[0]"),
        ]
    )
    saga_cell, step_cell = _execute(book).cells
    svg = saga_cell.outputs[0].data["image/svg+xml"]
    assert svg.lstrip().startswith(("<?xml", "<svg")) and "process_payment" in svg
    assert "image/svg+xml" not in step_cell.outputs[0].data  # a step is shown as text
