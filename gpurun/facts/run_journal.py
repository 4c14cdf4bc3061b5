"""The journal a run leaves on a host, folded into what a rollback must undo.

Each run appends one JSON line per change to /var/lib/gpurun/runs/<run id>/changes.jsonl
(see Host.record_change): files created, modified or removed with their SHA-256 before and
after and their backup, packages, unit states, groups and background daemons. Reading it and
the current state of what it names changes nothing on the host.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from gpurun.errors import GpurunError
from gpurun.facts import packages as package_facts
from gpurun.facts import processes
from gpurun.facts import system as system_facts
from gpurun.facts import systemd as systemd_facts
from gpurun.host import Host
from gpurun.host.changes import FileChange
from gpurun.host.host import RUNS_DIR
from gpurun.operations import background, service

FILE_ACTIONS = {"created", "modified", "removed", "mode"}
PROCESS_ACTIONS = {"process-started", "process-stopped", "process-killed", "process-restarted"}
# Journal actions the rollback needs no action for: a restart of a unit that was already
# running is undone by restarting it on the restored files.
FOLLOWED_ACTIONS = {"service-restarted"}
GPURUN_DAEMONS = {daemon.name: daemon for daemon in background.DAEMONS}


@dataclass
class FileRecord:
    """One path the earlier run changed, from its first change to its last, and its state now."""

    path: str
    sha256_before: str | None
    backup: str | None
    sha256_after: str | None
    sha256_now: str | None = None
    backup_sha256: str | None = None
    mode_before: str | None = None
    mode_now: str | None = None

    @property
    def created_by_run(self) -> bool:
        return self.sha256_before is None

    @property
    def as_before(self) -> bool:
        if self.created_by_run:
            return self.sha256_now is None
        return self.sha256_now == self.sha256_before and self.mode_now == self.mode_before

    @property
    def changed_since_run(self) -> bool:
        return self.sha256_now != self.sha256_after and not self.as_before


@dataclass
class Journal:
    """The earlier run's changes on this host, grouped by kind, with the state found now."""

    run_id: str
    entries: list[FileChange]
    files: list[FileRecord] = field(default_factory=list)
    installed_packages: dict[str, str] = field(default_factory=dict)
    upgraded_packages: dict[str, tuple[str, str]] = field(default_factory=dict)
    packages_now: dict[str, str] = field(default_factory=dict)
    package_format: str = ""
    enabled_units: dict[str, str] = field(default_factory=dict)
    started_units: dict[str, str] = field(default_factory=dict)
    units_now: dict[str, systemd_facts.UnitFacts] = field(default_factory=dict)
    created_groups: list[str] = field(default_factory=list)
    groups_now: set[str] = field(default_factory=set)
    # Units and snaps of another Docker that the run stopped and disabled, with their state
    # before ("enabled, active").
    disabled_units: dict[str, str] = field(default_factory=dict)
    disabled_snaps: list[str] = field(default_factory=list)
    # gpurun's background daemons (hosts without systemd) that the run started.
    started_processes: list[str] = field(default_factory=list)
    # Those it restarted (dockerd after a runtime change): running before the run, they are
    # restarted again once the files are restored.
    restarted_processes: list[str] = field(default_factory=list)
    processes_now: set[str] = field(default_factory=set)
    # Journal entries that gpurun cannot undo, such as a hand-started daemon the run stopped.
    not_restorable: list[FileChange] = field(default_factory=list)
    uses_systemd: bool = True


def journal_path(run_id: str) -> PurePosixPath:
    return RUNS_DIR / run_id / "changes.jsonl"


def read_journal(host: Host, run_id: str) -> list[FileChange] | None:
    """Return the changes a run journalled on the host, in order, or None without a journal."""
    path = journal_path(run_id)
    text = host.read_text(path)
    if text is None:
        return None
    fields = set(FileChange.__dataclass_fields__)
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as error:
            raise GpurunError(
                f"invalid journal {path} on host {host.name}, line {number}: {error}\n"
                f"  next step: the journal was edited or cut short; restore the files named in "
                f"outputs/{host.name}/{run_id}/ by hand from {path.parent}/backup"
            ) from error
        entries.append(FileChange(**{k: v for k, v in entry.items() if k in fields}))
    return entries


def file_mode_owner(host: Host, path: str) -> str | None:
    """Return 'mode uid:gid' of path, or None when it does not exist."""
    result = host.run(["stat", "-c", "%a %u:%g", "--", path], check=False)
    return result.stdout.strip() if result.ok else None


def group_entries(run_id: str, entries: list[FileChange]) -> Journal:
    """Fold the journal into one record per path, unit, package and group."""
    journal = Journal(run_id=run_id, entries=entries)
    files: dict[str, FileRecord] = {}
    first_process_actions: dict[str, FileChange] = {}
    for entry in entries:
        if entry.action in FILE_ACTIONS:
            record = files.get(entry.path)
            if record is None:
                # The first change records the state before the run and the backup of it.
                files[entry.path] = FileRecord(entry.path, entry.sha256_before, entry.backup,
                                               entry.sha256_after)
            else:
                record.sha256_after = entry.sha256_after
        elif entry.action == "package-installed":
            journal.installed_packages[entry_name(entry)] = entry.version_after or ""
        elif entry.action == "package-upgraded":
            journal.upgraded_packages[entry_name(entry)] = (entry.version_before or "",
                                                       entry.version_after or "")
        elif entry.action == "service-enabled":
            journal.enabled_units.setdefault(entry_name(entry), entry.version_before or "")
        elif entry.action == "service-started":
            journal.started_units.setdefault(entry_name(entry), entry.version_before or "")
        elif entry.action == "group-created":
            journal.created_groups.append(entry_name(entry))
        elif entry.action == "service-disabled":
            journal.disabled_units.setdefault(entry_name(entry), entry.version_before or "")
        elif entry.action == "snap-disabled":
            journal.disabled_snaps.append(entry_name(entry))
        elif entry.action in PROCESS_ACTIONS:
            first_process_actions.setdefault(entry_name(entry), entry)
        elif entry.action not in FOLLOWED_ACTIONS:
            journal.not_restorable.append(entry)
    journal.files = list(files.values())

    # A daemon the run started first was not running before it. One of gpurun's own that the
    # run restarted first was running, and is restarted again. One the run stopped first was
    # running too, and gpurun does not know how to start it again.
    for name, entry in first_process_actions.items():
        if entry.action == "process-started" and name in GPURUN_DAEMONS:
            journal.started_processes.append(name)
        elif entry.action == "process-restarted" and name in GPURUN_DAEMONS:
            journal.restarted_processes.append(name)
        else:
            journal.not_restorable.append(entry)
    return journal


def entry_name(entry: FileChange) -> str:
    """Return the name in a 'package NAME', 'unit NAME' or 'group NAME' journal path."""
    return entry.path.split(" ", 1)[-1]


def read_current_state(host: Host, journal: Journal) -> None:
    """Fill in the current state of every file, package, unit, daemon and group journalled."""
    journal.uses_systemd = system_facts.init_system(host) == "systemd"
    for record in journal.files:
        record.sha256_now = host.sha256(record.path)
        record.mode_now = file_mode_owner(host, record.path)
        if record.backup:
            record.backup_sha256 = host.sha256(record.backup)
            record.mode_before = file_mode_owner(host, record.backup)
    packages = [*journal.installed_packages, *journal.upgraded_packages]
    if packages:
        journal.package_format = system_facts.gather(host).package_format
        journal.packages_now = package_facts.installed_versions(
            host, packages, journal.package_format)
    if journal.uses_systemd:
        units = {*journal.enabled_units, *journal.started_units, *journal.disabled_units,
                 *service.UNITS}
        for unit in sorted(units):
            journal.units_now[unit] = systemd_facts.unit(host, unit)
    journal.processes_now = {name for name in [*journal.started_processes,
                                               *journal.restarted_processes]
                             if process_running(host, name)}
    journal.groups_now = {g for g in journal.created_groups if service.has_group(host, g)}


def process_running(host: Host, name: str) -> bool:
    daemon = GPURUN_DAEMONS[name]
    return processes.pid_file(host, daemon.pid_file, daemon.name).running


def unit_states(before: str) -> set[str]:
    """Return the states in a journalled 'UnitFileState, ActiveState' pair."""
    return {part.strip() for part in before.split(",")}
