"""The runbooks read as scripts: an introduction, a parameters cell, short cells calling gpurun."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import papermill
import pytest

from gpurun.steps import STEP_NAMES

RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"
MAX_CELL_LINES = 15
SECRET_WORDS = ("password", "passphrase", "token", "secret")


def load(name: str) -> nbformat.NotebookNode:
    return nbformat.read(str(RUNBOOKS / f"{name}.ipynb"), as_version=4)


@pytest.mark.parametrize("name", STEP_NAMES)
def test_runbook_opens_with_introduction(name):
    first = load(name).cells[0]
    assert first.cell_type == "markdown"
    assert first.source.startswith("# ")
    assert "**Changes:**" in first.source
    assert "**Undo:**" in first.source


@pytest.mark.parametrize("name", STEP_NAMES)
def test_runbook_has_tagged_parameters(name):
    parameters = [c for c in load(name).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1
    declared = papermill.inspect_notebook(str(RUNBOOKS / f"{name}.ipynb"))
    for required in ("host", "address", "bundle_dir", "run_id", "plan_only"):
        assert required in declared, f"{name} lacks parameter {required}"
    for parameter in declared:
        assert not any(word in parameter for word in SECRET_WORDS), parameter


@pytest.mark.parametrize("name", STEP_NAMES)
def test_code_cells_are_short_and_call_gpurun(name):
    cells = load(name).cells
    for index, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        lines = cell.source.splitlines()
        assert len(lines) <= MAX_CELL_LINES, f"{name} cell {index} has {len(lines)} lines"
        if "parameters" in cell.metadata.get("tags", []):
            continue
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
    assert "step.finish()" in code


def test_every_step_has_a_runbook():
    # The bundle runbook runs on the connected machine; tests/test_bundle_runbook.py covers it.
    assert sorted(p.stem for p in RUNBOOKS.glob("*.ipynb")) == sorted([*STEP_NAMES, "bundle"])
