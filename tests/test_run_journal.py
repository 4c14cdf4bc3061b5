"""Folding a run's journal into what a rollback must undo: journal lines in, records out."""

from __future__ import annotations

from gpurun.facts.run_journal import FileRecord, group_entries, unit_states
from gpurun.host.changes import FileChange

SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64


def change(path: str, action: str, before: str | None = None, after: str | None = None,
           backup: str | None = None, version_before: str | None = None,
           version_after: str | None = None) -> FileChange:
    return FileChange(path, action, before, after, backup, version_before=version_before,
                      version_after=version_after)


def test_file_keeps_first_before_last_after():
    journal = group_entries("r1", [
        change("/etc/docker/daemon.json", "modified", SHA_A, SHA_B, "/backup/daemon.json"),
        change("/etc/docker/daemon.json", "modified", SHA_B, SHA_C, "/backup/daemon.json"),
    ])
    assert journal.files == [FileRecord("/etc/docker/daemon.json", SHA_A, "/backup/daemon.json",
                                        SHA_C)]


def test_file_created_then_modified():
    journal = group_entries("r1", [
        change("/etc/docker/daemon.json", "created", None, SHA_B),
        change("/etc/docker/daemon.json", "modified", SHA_B, SHA_C, "/backup/daemon.json"),
    ])
    [record] = journal.files
    assert record.created_by_run
    assert record.backup is None
    assert record.sha256_after == SHA_C


def test_file_states_now():
    record = FileRecord("/usr/bin/ctr", SHA_A, "/backup/ctr", SHA_B, mode_before="750 0:0")
    record.sha256_now, record.mode_now = SHA_B, "755 0:0"
    assert not record.as_before
    assert not record.changed_since_run
    record.sha256_now = SHA_C
    assert record.changed_since_run
    record.sha256_now, record.mode_now = SHA_A, "750 0:0"
    assert record.as_before
    assert not record.changed_since_run


def test_removed_file_restorable():
    record = FileRecord("/etc/old.conf", SHA_A, "/backup/old.conf", None)
    assert not record.as_before
    assert not record.changed_since_run


def test_packages_units_groups():
    journal = group_entries("r1", [
        change("package libnvidia-container1", "package-installed", version_after="1.17.2-1"),
        change("package nvidia-ctk", "package-upgraded", version_before="1.0", version_after="2.0"),
        change("group docker", "group-created"),
        change("unit docker.service", "service-enabled", version_before="disabled",
               version_after="enabled"),
        change("unit docker.service", "service-started", version_before="inactive",
               version_after="active"),
        change("unit docker.service", "service-restarted", version_before="active",
               version_after="active"),
    ])
    assert journal.installed_packages == {"libnvidia-container1": "1.17.2-1"}
    assert journal.upgraded_packages == {"nvidia-ctk": ("1.0", "2.0")}
    assert journal.created_groups == ["docker"]
    assert journal.enabled_units == {"docker.service": "disabled"}
    assert journal.started_units == {"docker.service": "inactive"}
    assert journal.not_restorable == []


def test_first_unit_state_wins():
    journal = group_entries("r1", [
        change("unit docker.service", "service-started", version_before="inactive"),
        change("unit docker.service", "service-started", version_before="failed"),
    ])
    assert journal.started_units == {"docker.service": "inactive"}


def test_other_docker_disabled():
    journal = group_entries("r1", [
        change("unit docker.service", "service-disabled", version_before="enabled, active",
               version_after="disabled, inactive"),
        change("snap docker", "snap-disabled", version_before="enabled", version_after="disabled"),
    ])
    assert journal.disabled_units == {"docker.service": "enabled, active"}
    assert journal.disabled_snaps == ["docker"]
    assert unit_states("enabled, active") == {"enabled", "active"}
    assert "active" not in unit_states("disabled, inactive")


def test_daemon_started_by_run():
    journal = group_entries("r1", [
        change("process containerd", "process-started", version_after="pid 10: containerd"),
        change("process dockerd", "process-started", version_after="pid 11: dockerd"),
        change("process dockerd", "process-stopped", version_before="pid 11: dockerd"),
        change("process dockerd", "process-started", version_after="pid 12: dockerd"),
    ])
    assert journal.started_processes == ["containerd", "dockerd"]
    assert journal.not_restorable == []


def test_daemon_running_before_run():
    stopped = change("process dockerd", "process-stopped", version_before="pid 7: /opt/dockerd")
    journal = group_entries("r1", [
        stopped, change("process dockerd", "process-started", version_after="pid 9: dockerd")])
    assert journal.started_processes == []
    assert journal.not_restorable == [stopped]


def test_daemon_restarted_by_run():
    journal = group_entries("r1", [
        change("process dockerd", "process-restarted", version_before="pid 7: dockerd",
               version_after="pid 9: dockerd"),
    ])
    assert journal.restarted_processes == ["dockerd"]
    assert journal.started_processes == []
    assert journal.not_restorable == []


def test_daemon_started_then_restarted_is_stopped():
    journal = group_entries("r1", [
        change("process dockerd", "process-started", version_after="pid 7: dockerd"),
        change("process dockerd", "process-restarted", version_before="pid 7: dockerd",
               version_after="pid 9: dockerd"),
    ])
    assert journal.started_processes == ["dockerd"]
    assert journal.restarted_processes == []


def test_unknown_action_not_restorable():
    unknown = change("kernel module nvidia", "module-loaded")
    journal = group_entries("r1", [unknown])
    assert journal.not_restorable == [unknown]
