"""`gpurun rollback`: run the rollback runbook for the hosts of an earlier run.

The rollback is a run of its own, with a new run id: its notebook, run.json and manifest land
in outputs/<host>/<new run id>/ like those of any other run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from gpurun.errors import GpurunError
from gpurun.inventory import InventoryHost, load_inventory, select_hosts
from gpurun.runbook import PLAN_SUFFIX, RUN_ID_PATTERN, new_run_id
from gpurun.runner import HostRun, check_variables, declared_parameters, run_hosts, runbooks_dir
from gpurun.steps import STEP_NAMES

log = logging.getLogger("gpurun.rollback")

ROLLBACK_STEPS = [("01", "rollback")]


def changed_anything(outputs: Path, host: str, run_id: str) -> bool | None:
    """Return whether the run changed anything on host by its run.json, or None without one."""
    try:
        record = json.loads((outputs / host / run_id / "run.json").read_text())
    except (OSError, ValueError):
        return None
    if record.get("plan_only"):
        return False
    # A failed step may have changed files before it failed; its changed flag can be unset.
    return any(step.get("changed") or step.get("file_changes") or step.get("status") != "completed"
               for step in record.get("steps", []))


def hosts_to_roll_back(
    selected: list[InventoryHost], outputs: Path, run_id: str, named: bool
) -> list[InventoryHost]:
    """Return the hosts to roll back: the named ones, or those whose records show changes.

    Without --hosts or --groups, a host is rolled back only where outputs/ contains a
    record of the run that changed something. Named hosts are rolled back even without a
    local record, since the journal on the host is what the rollback reads.
    """
    if named:
        return selected
    chosen = []
    for host in selected:
        changed = changed_anything(outputs, host.name, run_id)
        if changed:
            chosen.append(host)
        elif changed is False:
            log.info("%s: run %s changed nothing there, so there is nothing to roll back",
                     host.name, run_id)
    if not chosen:
        raise GpurunError(
            f"no host of the inventory has a record of run {run_id} with changes under "
            f"{outputs}\n  next step: check the run id (the folder names under "
            f"{outputs}/<host>/), or name the hosts with --hosts to read their journals directly"
        )
    return chosen


def rollback_inventory(
    inventory_file: Path,
    undo_run_id: str,
    hosts: list[str],
    groups: list[str],
    *,
    parallel: int = 1,
    plan_only: bool = False,
    outputs: Path = Path("outputs"),
    overwrite_later_changes: bool = False,
) -> list[HostRun]:
    """Run the rollback runbook on each chosen host under a new run id."""
    # papermill logs three lines per notebook, and the summary table already reports each host.
    logging.getLogger("papermill").setLevel(logging.WARNING)
    if not RUN_ID_PATTERN.match(undo_run_id):
        raise GpurunError(f"invalid run id {undo_run_id!r}: give a folder name under "
                          f"{outputs}/<host>/")
    inventory = load_inventory(inventory_file)
    selected = select_hosts(inventory, hosts, groups, inventory_file)
    declared = declared_parameters(runbooks_dir(), [*STEP_NAMES, "rollback"])
    for host in selected:
        check_variables(host, declared, inventory_file)
    chosen = hosts_to_roll_back(selected, outputs, undo_run_id, bool(hosts or groups))
    overrides = {"undo_run_id": undo_run_id, "overwrite_later_changes": overwrite_later_changes}
    # A plan's id ends in -plan, as for `gpurun run --plan`, so it never reads as a real run.
    run_id = new_run_id() + (PLAN_SUFFIX if plan_only else "")
    return run_hosts(chosen, run_id, outputs, parallel=parallel, plan_only=plan_only,
                     overrides=overrides, runbook_steps=ROLLBACK_STEPS)
