"""rollback: undo what one earlier run changed on a host, from the journal and backups it left.

The earlier run's journal (/var/lib/gpurun/runs/<run id>/changes.jsonl on the host) lists
every file it created, modified or removed with the SHA-256 before and after, the backups it
took, the packages it installed, the units it enabled or started and the groups it created.
"""

from __future__ import annotations

from functools import partial

from gpurun import display
from gpurun.errors import GpurunError
from gpurun.facts import packages as package_facts
from gpurun.facts import run_journal
from gpurun.facts import systemd as systemd_facts
from gpurun.facts.run_journal import FileRecord, Journal
from gpurun.host import Host
from gpurun.host.changes import FileChange
from gpurun.operations import background, restore, service
from gpurun.plan import Action, Check, check, failed, unchanged
from gpurun.runbook import RUN_ID_PATTERN
from gpurun.step import Step, show

UNIT_DIRS = ("/etc/systemd/", "/lib/systemd/", "/usr/lib/systemd/")


def gather(step: Step, undo_run_id: str) -> Journal:
    """Read the earlier run's journal from the host and the current state of all it changed."""
    host = step.host
    if not RUN_ID_PATTERN.match(undo_run_id or ""):
        raise GpurunError(
            f"invalid undo_run_id {undo_run_id!r}: give the id of the run to undo, the folder "
            f"name under outputs/{host.name}/"
        )
    if undo_run_id == host.run_id:
        raise GpurunError(f"undo_run_id {undo_run_id} is this rollback's own run id")
    entries = run_journal.read_journal(host, undo_run_id)
    if entries is None:
        raise GpurunError(
            f"host {host.name} has no journal of run {undo_run_id} "
            f"({run_journal.journal_path(undo_run_id)})\n  next step: that run changed nothing "
            f"on this host, or the run id is wrong: see outputs/{host.name}/; nothing was changed"
        )

    journal = run_journal.group_entries(undo_run_id, entries)
    run_journal.read_current_state(host, journal)
    step.show_facts({
        "run undone": undo_run_id,
        "journal": str(run_journal.journal_path(undo_run_id)),
        "journal entries": len(entries),
        "files": len(journal.files),
        "packages installed by the run": ", ".join(journal.installed_packages) or "none",
        "units enabled or started by the run":
            ", ".join(sorted({*journal.enabled_units, *journal.started_units})) or "none",
        "groups created by the run": ", ".join(journal.created_groups) or "none",
    })
    show(_journal_table(journal))
    return journal


def _journal_table(journal: Journal) -> display.MimeBundle:
    rows = []
    for record in journal.files:
        before = "absent" if record.created_by_run else record.sha256_before
        after = record.sha256_after or "absent"
        now = "as before the run" if record.as_before else (
            "as the run left it" if record.sha256_now == record.sha256_after
            else "changed since the run")
        rows.append((record.path, before, after, now))
    return display.table("What the run changed, and the state now",
                         ["path", "sha256 before the run", "sha256 after the run", "now"], rows)


def plan(step: Step, journal: Journal, *, overwrite_later_changes: bool = False
         ) -> list[Action]:
    """Return the actions that put back the state before the run, in the order they must run."""
    host = step.host
    _require_restorable(host, journal, overwrite_later_changes)
    actions: list[Action] = []
    actions += _unit_stops(host, journal)
    actions += _process_stops(host, journal)
    actions += [_file_action(host, record) for record in reversed(journal.files)]
    actions += _package_actions(host, journal)
    actions += _group_actions(host, journal)

    files_restored = [r.path for r in journal.files if not r.as_before]
    units_restored = any(path.startswith(UNIT_DIRS) for path in files_restored)
    if journal.uses_systemd and (units_restored or journal.disabled_units):
        actions.append(Action("systemd", "daemon-reload", "unit files restored",
                              lambda: host.run(["systemctl", "daemon-reload"])))
    actions += _restarts(host, journal, bool(files_restored))
    actions += _other_docker_restarts(host, journal)
    actions += [_not_restorable(entry) for entry in journal.not_restorable]
    return actions


def _require_restorable(host: Host, journal: Journal, overwrite: bool) -> None:
    """Stop before any change when a backup is damaged or a file changed after the run."""
    damaged = [r for r in journal.files
               if not r.as_before and not r.created_by_run and r.backup_sha256 != r.sha256_before]
    if damaged:
        lines = "\n".join(f"  {r.path}: backup {r.backup or '(none)'} has SHA-256 "
                          f"{r.backup_sha256 or '(missing)'}, the run recorded {r.sha256_before}"
                          for r in damaged)
        raise GpurunError(
            f"cannot restore on host {host.name}: backups missing or changed\n{lines}\n"
            f"  next step: restore these files by hand; nothing was changed"
        )
    later = [r for r in journal.files if r.changed_since_run]
    if later and not overwrite:
        lines = "\n".join(f"  {r.path}: now {r.sha256_now or 'absent'}, the run left "
                          f"{r.sha256_after or 'absent'}" for r in later)
        raise GpurunError(
            f"files on host {host.name} changed after run {journal.run_id}:\n{lines}\n"
            f"  next step: undo the later runs first (newest first), or set "
            f"overwrite_later_changes to restore these files anyway; nothing was changed"
        )


def _unit_stops(host: Host, journal: Journal) -> list[Action]:
    """Stop the units the run started and disable the ones it enabled, Docker before containerd."""
    actions = []
    for unit in reversed(service.UNITS):
        if unit not in journal.started_units:
            continue
        now = journal.units_now[unit]
        if not now.active:
            actions.append(unchanged(f"stop {unit}", f"already {now.active_state}"))
            continue
        actions.append(Action(f"stop {unit}", "systemctl stop",
                              f"the run started it; it was {journal.started_units[unit]}",
                              partial(restore.stop_unit, host, unit, now.active_state)))
    for unit in reversed(service.UNITS):
        before = journal.enabled_units.get(unit)
        if before is None:
            continue
        now = journal.units_now[unit]
        if not now.enabled:
            actions.append(unchanged(f"disable {unit}", f"already {now.file_state or 'absent'}"))
            continue
        actions.append(Action(f"disable {unit}", "systemctl disable",
                              f"the run enabled it; it was {before}",
                              partial(restore.disable_unit, host, unit, now.file_state)))
    return actions


def _process_stops(host: Host, journal: Journal) -> list[Action]:
    """Stop the background daemons the run started, dockerd before containerd."""
    actions = []
    for name in sorted(journal.started_processes, key=lambda n: n != "dockerd"):
        if name not in journal.processes_now:
            actions.append(unchanged(f"process {name}", "not running"))
            continue
        actions.append(Action(f"process {name}", "stop (SIGTERM, then wait)",
                              "the run started it",
                              partial(background.stop, host, run_journal.GPURUN_DAEMONS[name])))
    return actions


def _other_docker_restarts(host: Host, journal: Journal) -> list[Action]:
    """Enable and start again the units and snaps of another Docker that the run disabled."""
    actions = []
    for unit, before in journal.disabled_units.items():
        now = journal.units_now.get(unit)
        if "enabled" in run_journal.unit_states(before) and not (now and now.enabled):
            actions.append(Action(f"enable {unit}", "systemctl enable",
                                  f"the run disabled it; it was {before}",
                                  partial(restore.enable_unit, host, unit,
                                          now.file_state if now else "")))
        if "active" in run_journal.unit_states(before) and not (now and now.active):
            actions.append(Action(f"start {unit}", "systemctl start",
                                  f"the run stopped it; it was {before}",
                                  partial(restore.start_unit, host, unit,
                                          now.active_state if now else "")))
    for snap in journal.disabled_snaps:
        actions.append(Action(f"snap {snap}", "snap start --enable",
                              "the run stopped and disabled it",
                              partial(restore.enable_snap, host, snap)))
    return actions


def _not_restorable(entry: FileChange) -> Action:
    before = f" (before: {entry.version_before})" if entry.version_before else ""
    return unchanged(entry.path, f"not undone: gpurun cannot undo {entry.action}{before}; "
                                 f"put it back by hand")


def _file_action(host: Host, record: FileRecord) -> Action:
    if record.as_before:
        return unchanged(record.path, "already as before the run")
    if record.created_by_run:
        return Action(record.path, "remove", "the run created it",
                      lambda: restore.remove_file(host, record.path))
    reason = "the run removed it" if record.sha256_now is None else (
        f"the run changed it (sha256 {record.sha256_before} before)")
    backup, expected = record.backup or "", record.sha256_before or ""
    return Action(record.path, f"restore from {backup}", reason,
                  lambda: restore.restore_file(host, record.path, backup, expected))


def _package_actions(host: Host, journal: Journal) -> list[Action]:
    actions = []
    still_installed = {name: version for name, version in journal.installed_packages.items()
                       if name in journal.packages_now}
    if still_installed:
        names = ", ".join(still_installed)
        actions.append(Action(f"packages {names}", "remove and purge in one transaction",
                              "the run installed them",
                              lambda: restore.remove_packages(host, still_installed,
                                                              journal.package_format)))
    elif journal.installed_packages:
        actions.append(unchanged("packages", "the ones the run installed are not installed"))
    for name, (before, after) in journal.upgraded_packages.items():
        # NOTE: gpurun keeps no copy of a package version it replaced, so it cannot go back.
        actions.append(unchanged(
            f"package {name}",
            f"the run upgraded it from {before} to {after}; gpurun keeps no copy of {before}, "
            f"so install {name} {before} from your own repository"))
    return actions


def _group_actions(host: Host, journal: Journal) -> list[Action]:
    actions = []
    for group in journal.created_groups:
        if group not in journal.groups_now:
            actions.append(unchanged(f"group {group}", "already absent"))
            continue
        actions.append(Action(f"group {group}", "groupdel", "the run created it",
                              partial(restore.delete_group, host, group)))
    return actions


def _restarts(host: Host, journal: Journal, files_restored: bool) -> list[Action]:
    """Restart the services that stay running, so they use the restored files."""
    if not files_restored:
        return []
    actions = []
    # docker.socket is left alone: docker.service requires it, so restarting it would
    # restart the service a second time.
    for unit in ("containerd.service", "docker.service"):
        now = journal.units_now.get(unit)
        if now is None or not now.active or unit in journal.started_units:
            continue
        actions.append(Action(f"restart {unit}", "systemctl restart",
                              "it was running before the run and its files were restored",
                              partial(restore.restart_unit, host, unit)))
    if any(a.target == "restart docker.service" for a in actions):
        actions.append(Action("docker API", "wait until it answers", "docker.service restarted",
                              lambda: service.wait_for_api(host)))
    # Without systemd: the dockerd the run restarted reads the restored files on a restart.
    for name in journal.restarted_processes:
        if name not in journal.processes_now:
            actions.append(unchanged(f"restart process {name}", "not running"))
            continue
        actions.append(Action(f"restart process {name}", "stop, then start with its flags",
                              "it was running before the run and its files were restored",
                              partial(background.restart_dockerd, host)))
    return actions


def verify(step: Step, journal: Journal) -> list[Check]:
    """Check that every file, package, unit and group the run changed is as before it."""
    host = step.host
    checks = []
    for record in journal.files:
        sha_now = host.sha256(record.path)
        if record.created_by_run:
            checks.append(check(f"{record.path} removed", sha_now is None,
                                "absent" if sha_now is None else f"present, sha256 {sha_now}"))
            continue
        mode_now = run_journal.file_mode_owner(host, record.path)
        checks.append(check(f"{record.path} as before", sha_now == record.sha256_before,
                            f"sha256 {sha_now or 'absent'}, before the run "
                            f"{record.sha256_before}"))
        checks.append(check(f"{record.path} mode and owner", mode_now == record.mode_before,
                            f"{mode_now or 'absent'}, before the run {record.mode_before}"))

    names = [*journal.installed_packages, *journal.upgraded_packages]
    installed = (package_facts.installed_versions(host, names, journal.package_format)
                 if names else {})
    for name in journal.installed_packages:
        checks.append(check(f"package {name} removed", name not in installed,
                            installed.get(name, "not installed")))
    for name, (before, _) in journal.upgraded_packages.items():
        if installed.get(name) == before:
            checks.append(check(f"package {name} at {before}", True, before))
        else:
            checks.append(failed(f"package {name} at {before}",
                                 f"installed {installed.get(name, 'none')}: reinstall {before} "
                                 f"by hand"))

    for unit, before in journal.disabled_units.items():
        now = systemd_facts.unit(host, unit)
        if "enabled" in run_journal.unit_states(before):
            checks.append(check(f"{unit} enabled again", now.enabled, now.file_state))
        if "active" in run_journal.unit_states(before):
            checks.append(check(f"{unit} active again", now.active, now.active_state))
    for unit in sorted({*journal.enabled_units, *journal.started_units} - set(
            journal.disabled_units)):
        now = systemd_facts.unit(host, unit)
        if unit in journal.enabled_units:
            checks.append(check(f"{unit} not enabled", not now.enabled,
                                now.file_state or now.load_state))
        if unit in journal.started_units:
            checks.append(check(f"{unit} not active", not now.active, now.active_state))
    for name in journal.started_processes:
        running = run_journal.process_running(host, name)
        checks.append(check(f"process {name} stopped", not running,
                            "running" if running else "not running"))
    for name in journal.restarted_processes:
        running = run_journal.process_running(host, name)
        checks.append(check(f"process {name} running", running,
                            "running" if running else "not running"))
    for group in journal.created_groups:
        present = service.has_group(host, group)
        checks.append(check(f"group {group} removed", not present,
                            "present" if present else "absent"))
    for entry in journal.not_restorable:
        checks.append(failed(f"{entry.path} as before",
                             f"the run's {entry.action} is not undone: put it back by hand"))
    return checks
