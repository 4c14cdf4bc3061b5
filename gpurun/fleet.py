"""Run the runbooks on the hosts of an inventory: choose hosts, check inputs, show progress.

`gpurun run` calls run_inventory; in a JupyterLab notebook, `gpurun.fleet.run(...)` does the
same and shows the progress as a widget.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpurun.errors import GpurunError, RunInterrupted
from gpurun.inventory import InventoryHost, load_inventory, select_hosts
from gpurun.progress import TerminalProgress, WidgetProgress, summary_lines
from gpurun.runbook import PLAN_SUFFIX, RUN_ID_PATTERN, new_run_id
from gpurun.runner import HostRun, check_variables, declared_parameters, run_hosts, runbooks_dir
from gpurun.steps import STEP_NAMES
from gpurun.steps.common import open_bundle

log = logging.getLogger("gpurun.fleet")


@dataclass
class Resume:
    """The steps that a --resume run skips and runs for one host of the failed run."""

    steps: list[str]
    # Steps that completed before, each with the id of the run in which it completed.
    completed_earlier: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)


def run_inventory(
    inventory_file: Path,
    hosts: list[str],
    groups: list[str],
    steps: list[str],
    parallel: int,
    plan_only: bool,
    outputs: Path,
    run_id: str,
    bundle_dir: str | None,
    *,
    resume: str = "",
    progress: str = "terminal",
) -> list[HostRun]:
    """Run the steps on the chosen hosts, `parallel` at a time; return one record per host.

    progress is "terminal", "widget" (an ipywidgets table in a notebook) or "none".
    """
    # papermill logs three lines per notebook; the progress display shows each step instead.
    logging.getLogger("papermill").setLevel(logging.WARNING)
    unknown = [s for s in steps if s not in STEP_NAMES]
    if unknown:
        raise GpurunError(f"unknown step {', '.join(unknown)}: use {', '.join(STEP_NAMES)}")
    if parallel < 1:
        raise GpurunError(f"invalid --parallel {parallel}: give 1 or more hosts at a time")
    if run_id and not RUN_ID_PATTERN.match(run_id):
        raise GpurunError(f"invalid run id {run_id!r}: use letters, digits, '.', '_' and '-', "
                          f"at most 64")
    inventory = load_inventory(inventory_file)

    resumed: dict[str, Resume] = {}
    if resume:
        if plan_only or steps:
            raise GpurunError("--resume continues the steps of the failed run: give it without "
                              "--plan and --steps")
        resumed = hosts_to_resume(outputs, resume)
        missing = sorted(set(resumed) - set(inventory))
        if missing:
            raise GpurunError(f"hosts of run {resume} not in inventory {inventory_file}: "
                              f"{', '.join(missing)}\n  next step: give the inventory that run "
                              f"used")
        if not hosts and not groups:
            hosts = sorted(resumed)
    selected = select_hosts(inventory, hosts, groups, inventory_file)
    if resume:
        selected = [host for host in selected if host.name in resumed]
        if not selected:
            raise GpurunError(f"no host of run {resume} is left to resume among those chosen")

    declared = declared_parameters(runbooks_dir(), STEP_NAMES)
    for host in selected:
        check_variables(host, declared, inventory_file)

    overrides = {"bundle_dir": bundle_dir} if bundle_dir else {}
    per_host = {name: {"steps": entry.steps, "completed_earlier": entry.completed_earlier,
                       "resumed_from": resume,
                       "overrides": {**entry.overrides, **overrides}}
                for name, entry in resumed.items()}
    verify_bundles(selected, overrides, per_host)

    run_id = run_id or new_run_id() + (PLAN_SUFFIX if plan_only else "")
    shown_steps = steps or STEP_NAMES
    display = _progress(progress, outputs, run_id, [h.name for h in selected], shown_steps)
    try:
        return run_hosts(selected, run_id, outputs, parallel=parallel, progress=display,
                         per_host=per_host, steps=steps or None, plan_only=plan_only,
                         overrides=overrides)
    except KeyboardInterrupt:
        command = f"gpurun run --inventory {inventory_file} --resume {run_id}"
        if outputs != Path("outputs"):
            command += f" --outputs {outputs}"
        raise RunInterrupted(
            f"interrupted: run {run_id} stopped, and each host's run.json under {outputs}/ "
            f"names the step it was in\n  next step: continue with `{command}`"
        ) from None


def run(inventory: str | Path, *, hosts: list[str] | None = None,
        groups: list[str] | None = None, steps: list[str] | None = None, parallel: int = 1,
        plan: bool = False, outputs: str | Path = "outputs", run_id: str = "",
        bundle: str | None = None, resume: str = "") -> list[HostRun]:
    """Run from a notebook: like `gpurun run`, with the progress as a widget and a summary."""
    from IPython.display import HTML, display

    records = run_inventory(Path(inventory), hosts or [], groups or [], steps or [], parallel,
                            plan, Path(outputs), run_id, bundle, resume=resume,
                            progress="widget")
    display(HTML("<pre>" + "\n".join(summary_lines(records, Path(outputs))) + "</pre>"))
    return records


def hosts_to_resume(outputs: Path, run_id: str) -> dict[str, Resume]:
    """Return, for each host that did not complete run_id, where its run continues.

    A step counts as done if it completed in that run or an earlier run it resumed.
    """
    if not RUN_ID_PATTERN.match(run_id):
        raise GpurunError(f"invalid run id {run_id!r}: give a folder name under "
                          f"{outputs}/<host>/")
    records = sorted(outputs.glob(f"*/{run_id}/run.json"))
    if not records:
        raise GpurunError(f"no records of run {run_id} under {outputs}\n  next step: give the "
                          f"id of a run (a folder name under {outputs}/<host>/) and --outputs")
    resumed = {}
    for path in records:
        record = json.loads(path.read_text())
        host = record["host"]
        if record.get("plan_only"):
            raise GpurunError(f"run {run_id} is a plan (--plan) and changed nothing, so there is "
                              f"nothing to resume\n  next step: run without --plan")
        record = _latest_attempt(outputs / host, record)
        if record.get("status") == "completed":
            log.info("%s: completed in run %s, nothing to resume", host, record["run_id"])
            continue
        done = {step["name"]: step.get("completed_in") or record["run_id"]
                for step in record.get("steps", [])
                if step.get("status") == "completed"
                or (step.get("status") == "skipped" and step.get("completed_in"))}
        steps = record.get("requested_steps") or STEP_NAMES
        resumed[host] = Resume(steps, {name: done[name] for name in steps if name in done},
                               record.get("overrides", {}))
    if not resumed:
        raise GpurunError(f"every host of run {run_id} completed; there is nothing to resume")
    return resumed


def _latest_attempt(host_outputs: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Follow the runs that resumed this one to the newest, so a second --resume repeats no step."""
    later_runs: dict[str, list[dict[str, Any]]] = {}
    for path in host_outputs.glob("*/run.json"):
        try:
            other = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if other.get("resumed_from"):
            later_runs.setdefault(other["resumed_from"], []).append(other)
    while later_runs.get(record["run_id"]):
        record = max(later_runs[record["run_id"]], key=lambda r: (r.get("started", ""),
                                                                 r["run_id"]))
    return record


def verify_bundles(hosts: list[InventoryHost], overrides: dict[str, Any],
                   per_host: dict[str, dict[str, Any]]) -> None:
    """Check each bundle the hosts use once, before any host starts.

    A bad bundle then stops the run with one message, and the steps on every host find the
    check recorded (gpurun.bundle_cache) instead of hashing the bundle again.
    """
    folders = set()
    for host in hosts:
        parameters = {**host.parameters(), **per_host.get(host.name, {}).get("overrides", {}),
                      **overrides}
        if parameters.get("bundle_dir"):
            folders.add(str(parameters["bundle_dir"]))
    for folder in sorted(folders):
        open_bundle(folder)


def _progress(kind: str, outputs: Path, run_id: str, hosts: list[str],
              steps: list[str]) -> Any:
    if kind == "terminal":
        return TerminalProgress(outputs, run_id, hosts, steps)
    if kind == "widget":
        return WidgetProgress(outputs, run_id, hosts, steps)
    return None
