"""Read the runs recorded under an outputs folder into rows of the fleet report."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from gpurun.records import RecordProblem, check_run_folder, run_folders
from gpurun.report.render import html_path

ROLLBACK_STEP = "rollback"


@dataclass
class StepCell:
    """One step of one run, as a cell of the report."""

    name: str
    status: str
    result: str
    seconds: float
    notebook: Path
    edited: bool = False

    @property
    def html(self) -> Path:
        return html_path(self.notebook)


@dataclass
class RunRow:
    """One run on one host, as a row of the report."""

    host: str
    run_id: str
    folder: Path
    status: str
    kind: str
    started: str
    ended: str
    steps: dict[str, StepCell] = field(default_factory=dict)
    problems: list[RecordProblem] = field(default_factory=list)

    @property
    def record_state(self) -> str:
        if not self.problems:
            return "intact"
        if any(p.name == "SHA256SUMS" and p.problem.startswith("missing") for p in self.problems):
            return "no manifest"
        return "edited"


def step_result(step: dict[str, Any], plan_only: bool) -> str:
    """Return what a step did in a few words: changed, unchanged, a plan, or its error."""
    if step.get("status") != "completed":
        error = (step.get("error") or "failed").splitlines()
        return error[0] if error else "failed"
    if plan_only:
        return f"plan: {step.get('planned_changes', 0)} change(s)"
    return "changed" if step.get("changed") else "unchanged"


def undone_run_id(notebook: Path) -> str:
    """Return the undo_run_id a rollback notebook was executed with, from papermill's metadata."""
    if not notebook.exists():
        return ""
    node = nbformat.read(str(notebook), as_version=4)
    parameters = node.metadata.get("papermill", {}).get("parameters", {})
    return str(parameters.get("undo_run_id", ""))


def read_run(folder: Path) -> RunRow | None:
    """Return the report row of one run folder, or None where run.json is missing or unreadable."""
    try:
        record = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return None
    plan_only = bool(record.get("plan_only"))
    row = RunRow(
        host=str(record.get("host", folder.parent.name)),
        run_id=str(record.get("run_id", folder.name)),
        folder=folder,
        status=str(record.get("status", "unknown")),
        kind="plan" if plan_only else "apply",
        started=str(record.get("started", "")),
        ended=str(record.get("ended", "")),
        problems=check_run_folder(folder),
    )
    edited = {problem.name for problem in row.problems}
    for step in record.get("steps", []):
        notebook = folder / str(step.get("notebook", ""))
        row.steps[step["name"]] = StepCell(
            name=step["name"],
            status=str(step.get("status", "unknown")),
            result=step_result(step, plan_only),
            seconds=float(step.get("seconds") or 0),
            notebook=notebook,
            edited=notebook.name in edited,
        )
        if step["name"] == ROLLBACK_STEP:
            row.kind = f"rollback of {undone_run_id(notebook) or '?'}"
    return row


def read_runs(outputs: Path) -> list[RunRow]:
    """Return every run under outputs, newest first (then by host)."""
    rows = [row for row in map(read_run, run_folders(outputs)) if row is not None]
    rows.sort(key=lambda row: row.host)
    rows.sort(key=lambda row: (row.started, row.run_id), reverse=True)
    return rows
