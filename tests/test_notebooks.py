"""Hygiene of the committed notebooks: clean (no outputs), parameterised the same way, python3 kernel."""

from __future__ import annotations

import ast

import nbformat
import pytest

from medclf.config import paths as config

PARAMETERS = ("settings",)
NOTEBOOKS = sorted(p for p in config.NOTEBOOKS_DIR.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _ids(paths):
    return [str(p.relative_to(config.NOTEBOOKS_DIR)) for p in paths]


def test_eda_notebook_is_committed():
    assert config.NOTEBOOKS_DIR / "01_eda.ipynb" in NOTEBOOKS


@pytest.fixture(params=NOTEBOOKS, ids=_ids(NOTEBOOKS))
def notebook(request):
    nb = nbformat.read(request.param, as_version=4)
    nbformat.validate(nb)
    return nb


def test_no_outputs_or_execution_counts(notebook):
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {index} has outputs: clear them before committing"
            assert cell.execution_count is None, f"cell {index} has an execution count"
    assert "papermill" not in notebook.metadata, "papermill metadata: commit the source notebook, not a run"


def test_kernel_is_python3(notebook):
    assert notebook.metadata.get("kernelspec", {}).get("name") == "python3"


def test_first_code_cell_is_the_parameters_cell(notebook):
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells, "notebook has no code cell"
    first = code_cells[0]
    assert "parameters" in first.metadata.get("tags", []), "first code cell must be tagged 'parameters'"
    assigned = []
    for statement in ast.parse(first.source).body:
        assert isinstance(statement, ast.Assign) and len(statement.targets) == 1, \
            f"parameters cell may hold only simple assignments, got: {ast.unparse(statement)}"
        assert isinstance(statement.targets[0], ast.Name)
        ast.literal_eval(statement.value)  # a literal papermill can override
        assigned.append(statement.targets[0].id)
    assert tuple(assigned) == PARAMETERS


def test_parameters_cell_appears_once(notebook):
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1


def _displayed(notebook):
    """``(cell index, source of the first argument)`` of every ``display(...)`` call in the code cells."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "display" \
                    and node.args:
                yield index, ast.unparse(node.args[0])


def test_tables_are_displayed_through_the_one_formatter(notebook):
    """Every table a notebook shows goes through ``tables.readable`` (one missing-value symbol, three decimals):
    a bare ``display(frame)`` printed NaN/None and 0.4 / 0.242 / 0.4994 side by side."""
    for index, shown in _displayed(notebook):
        assert shown.startswith(("Markdown(", "HTML(", "tables.readable(")), f"cell {index}: display({shown})"
