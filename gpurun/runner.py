"""Run the runbooks for each host through papermill and write the run's records.

Each host gets outputs/<host>/<run-id>/ with one executed notebook per step and run.json.
Hosts run in separate processes, so one slow or failing host never holds up another.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import papermill

from gpurun.errors import ConfigError
from gpurun.inventory import InventoryHost
from gpurun.step import SUMMARY_MIME
from gpurun.steps import HOST_STEPS

log = logging.getLogger("gpurun.runner")

KERNEL = "python3"


@dataclass
class StepRecord:
    number: str
    name: str
    status: str
    changed: bool | None
    planned_changes: int
    seconds: float
    notebook: str
    error: str = ""
    outcomes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class HostRun:
    host: str
    run_id: str
    plan_only: bool
    started: str
    ended: str = ""
    status: str = "running"
    steps: list[StepRecord] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.status == "completed"


def runbooks_dir() -> Path:
    """Return the runbooks folder: GPURUN_RUNBOOKS, ./runbooks, or the one beside the package."""
    configured = os.environ.get("GPURUN_RUNBOOKS")
    if configured:
        return Path(configured)
    here = Path.cwd() / "runbooks"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "runbooks"


def declared_parameters(runbooks: Path, steps: list[str]) -> dict[str, set[str]]:
    """Return the parameter names each step's runbook declares in its parameters cell."""
    declared = {}
    for name in steps:
        inspected = papermill.inspect_notebook(str(runbooks / f"{name}.ipynb"))
        declared[name] = set(inspected)
    return declared


def check_variables(host: InventoryHost, declared: dict[str, set[str]], inventory: Path) -> None:
    """Reject a host variable no runbook takes: most often a typo that would be ignored."""
    known = set().union(*declared.values())
    unknown = sorted(set(host.parameters()) - known)
    if unknown:
        raise ConfigError(
            f"inventory {inventory}: host {host.name} sets {', '.join(unknown)}, which no runbook "
            f"takes\n  runbook parameters: {', '.join(sorted(known))}"
        )


def run_host(
    host: InventoryHost,
    run_id: str,
    outputs: Path,
    *,
    steps: list[str] | None = None,
    plan_only: bool = False,
    runbooks: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> HostRun:
    """Run the steps in order on one host; the first failed step ends that host's run."""
    runbooks = runbooks or runbooks_dir()
    wanted = [(n, s) for n, s in HOST_STEPS if steps is None or s in steps]
    declared = declared_parameters(runbooks, [s for _, s in wanted])
    folder = outputs / host.name / run_id
    folder.mkdir(parents=True, exist_ok=True)
    record = HostRun(host=host.name, run_id=run_id, plan_only=plan_only, started=_now())
    parameters = {**host.parameters(), **(overrides or {}), "run_id": run_id,
                  "plan_only": plan_only}

    for number, name in wanted:
        notebook = folder / f"{number}-{name}.ipynb"
        given = {k: v for k, v in parameters.items() if k in declared[name]}
        step = _execute(runbooks / f"{name}.ipynb", notebook, given, number, name)
        record.steps.append(step)
        _write_run_json(folder, record)
        log.info("%s: %s %s (%.1f s)", host.name, name, step.status, step.seconds)
        if step.status != "completed":
            record.status = "failed"
            break
    else:
        record.status = "completed"

    record.ended = _now()
    _write_run_json(folder, record)
    return record


def run_hosts(
    hosts: list[InventoryHost], run_id: str, outputs: Path, *, parallel: int = 1, **options: Any
) -> list[HostRun]:
    """Run every host, `parallel` at a time; a host that fails does not stop the others."""
    if parallel <= 1 or len(hosts) <= 1:
        return [run_host(host, run_id, outputs, **options) for host in hosts]
    with ProcessPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(run_host, host, run_id, outputs, **options) for host in hosts]
        return [future.result() for future in futures]


def _execute(source: Path, target: Path, parameters: dict[str, Any], number: str,
             name: str) -> StepRecord:
    started = time.monotonic()
    error = ""
    try:
        papermill.execute_notebook(
            str(source), str(target), parameters=parameters, kernel_name=KERNEL,
            progress_bar=False, log_output=False, cwd=str(Path.cwd()),
        )
        status = "completed"
    except papermill.PapermillExecutionError as failure:
        status = "failed"
        error = f"{failure.ename}: {failure.evalue}"
    except Exception as failure:  # the kernel could not start or died: keep the record going
        status = "failed"
        error = f"{type(failure).__name__}: {failure}"
    summary = read_summary(target)
    return StepRecord(
        number=number,
        name=name,
        status=status,
        changed=summary.get("changed"),
        planned_changes=summary.get("planned_changes", 0),
        seconds=round(time.monotonic() - started, 2),
        notebook=target.name,
        error=error,
        outcomes=summary.get("outcomes", []),
    )


def read_summary(notebook: Path) -> dict[str, Any]:
    """Return the step summary a runbook stored in its outputs, or {} when it has none."""
    if not notebook.exists():
        return {}
    node = nbformat.read(str(notebook), as_version=4)
    for cell in node.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if SUMMARY_MIME in data:
                return dict(data[SUMMARY_MIME])
    return {}


def _write_run_json(folder: Path, record: HostRun) -> None:
    """Write run.json atomically, so a reader never sees half a file."""
    temporary = folder / ".run.json.tmp"
    temporary.write_text(json.dumps(asdict(record), indent=2) + "\n")
    os.replace(temporary, folder / "run.json")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
