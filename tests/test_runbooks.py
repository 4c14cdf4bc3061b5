"""The runbooks read as scripts: an introduction, a parameters cell, short cells calling gpurun.

The logic lives in the gpurun package, so a runbook's cells stay short enough to read at a
glance, and the parameters cell holds only values.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from gpurun.steps import STEP_NAMES

RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"
BUILD_SCRIPT = RUNBOOKS.parent / "tools" / "build_runbooks.py"
MAX_CELL_LINES = 15
SECRET_WORDS = ("password", "passphrase", "token", "secret")
# A parameter whose name ends so holds the name of an environment variable, not a secret.
ENVIRONMENT_NAME_SUFFIX = "_env"
# Runbooks that connect to a host and open a step record (the bundle runbook does neither).
HOST_RUNBOOKS = [*STEP_NAMES, "rollback"]


def load(name: str) -> nbformat.NotebookNode:
    return nbformat.read(str(RUNBOOKS / f"{name}.ipynb"), as_version=4)


@pytest.mark.parametrize("name", [*HOST_RUNBOOKS, "bundle"])
def test_runbook_opens_with_introduction(name):
    first = load(name).cells[0]
    assert first.cell_type == "markdown"
    assert first.source.startswith("# ")
    assert "**Changes:**" in first.source
    assert "**Undo:**" in first.source


@pytest.mark.parametrize("name", HOST_RUNBOOKS)
def test_runbook_has_tagged_parameters(name):
    parameters = [c for c in load(name).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1
    declared = papermill.inspect_notebook(str(RUNBOOKS / f"{name}.ipynb"))
    for required in ("host", "address", "bundle_dir", "run_id", "plan_only"):
        assert required in declared, f"{name} lacks parameter {required}"
    for parameter in declared:
        if parameter.endswith(ENVIRONMENT_NAME_SUFFIX):
            continue
        assert not any(word in parameter for word in SECRET_WORDS), parameter


@pytest.mark.parametrize("name", HOST_RUNBOOKS)
def test_parameters_cell_holds_only_values(name):
    """Every line of the parameters cell is `name = literal`, with an optional comment."""
    [cell] = [c for c in load(name).cells if "parameters" in c.metadata.get("tags", [])]
    tree = ast.parse(cell.source)
    for statement in tree.body:
        assert isinstance(statement, ast.Assign), f"{name}: line {statement.lineno} is not a value"
        assert len(statement.targets) == 1
        assert isinstance(statement.targets[0], ast.Name)
        ast.literal_eval(statement.value)
    assert len(tree.body) == len(cell.source.splitlines()), f"{name}: one parameter a line"


@pytest.mark.parametrize("name", HOST_RUNBOOKS)
def test_runbook_has_host_picker(name):
    """The host picker runs after the parameters cell and before the host is connected."""
    cells = [c for c in load(name).cells if c.cell_type == "code"]
    assert "parameters" in cells[0].metadata.get("tags", [])
    assert f'widgets.host_picker("{name}", inventory_file)' in cells[1].source
    assert "runbook.start(" in cells[2].source
    assert "auto_apply=auto_apply" in cells[2].source


@pytest.mark.parametrize("name", [*HOST_RUNBOOKS, "bundle"])
def test_code_cells_are_short_and_call_gpurun(name):
    cells = load(name).cells
    for index, cell in enumerate(cells):
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        lines = cell.source.splitlines()
        assert len(lines) <= MAX_CELL_LINES, f"{name} cell {index} has {len(lines)} lines"
        called = _called_names(cell.source)
        assert called & gpurun_names(cells), f"{name} cell {index} calls no gpurun function"
        assert cells[index - 1].cell_type == "markdown", f"{name} cell {index} has no note above"


def gpurun_names(cells: list[nbformat.NotebookNode]) -> set[str]:
    """Return the names the notebook imports from gpurun, plus the step record."""
    names = {"step"}
    for cell in cells:
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gpurun"):
                names |= {alias.asname or alias.name for alias in node.names}
    return names


def _called_names(source: str) -> set[str]:
    """Return the base names of every call in source: `a.b(...)` gives 'a'."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            target = node.func
            while isinstance(target, ast.Attribute):
                target = target.value
            if isinstance(target, ast.Name):
                names.add(target.id)
    return names


@pytest.mark.parametrize("name", STEP_NAMES)
def test_runbook_ends_with_record(name):
    code = [c.source for c in load(name).cells if c.cell_type == "code"]
    assert "summary = step.finish()" in code


def test_every_step_has_a_runbook():
    # The bundle runbook runs on the connected machine; tests/test_bundle_runbook.py covers it.
    expected = [*HOST_RUNBOOKS, "bundle"]
    assert sorted(p.stem for p in RUNBOOKS.glob("*.ipynb")) == sorted(expected)


def test_runbooks_match_build_script():
    """runbooks/ holds what tools/build_runbooks.py writes: rerun it after editing it."""
    for name, notebook in _build_script_notebooks().items():
        sources = [c.source for c in load(name).cells]
        assert sources == [c.source for c in notebook.cells], f"runbooks/{name}.ipynb is stale"


def _build_script_notebooks() -> dict[str, nbformat.NotebookNode]:
    """Return the notebooks tools/build_runbooks.py would write, by runbook name."""
    sys.path.insert(0, str(BUILD_SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("build_runbooks", BUILD_SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BUILD_SCRIPT.parent))
    return {**module.STEPS, "bundle": module.bundle_runbook()}
