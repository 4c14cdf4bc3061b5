"""Undo what an earlier run changed: put files back from its backups, remove what it added.

Every change made here is journalled in the rollback's own run, with a backup of what it
replaces, so the rollback is a change record like any other run.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from gpurun.errors import GpurunError
from gpurun.host import Host
from gpurun.host.changes import FileChange, unified_diff
from gpurun.operations import service

# A file is shown as a diff when its first 64 KiB hold no NUL byte and it is at most 1 MiB:
# config files and units pass, binaries do not.
TEXT_PROBE_BYTES = 65536
MAX_TEXT_BYTES = 1 << 20
TEXT_PROBE = (
    'size=$(wc -c < "$1") && [ "$size" -le "$2" ] && '
    'head -c "$3" "$1" | tr -d "\\000" | wc -c && head -c "$3" "$1" | wc -c'
)


def is_text(host: Host, path: str) -> bool:
    """Return whether path contains text small enough to show as a diff."""
    result = host.run(["sh", "-c", TEXT_PROBE, "sh", path, str(MAX_TEXT_BYTES),
                       str(TEXT_PROBE_BYTES)], check=False)
    counts = result.stdout.split()
    return result.ok and len(counts) == 2 and counts[0] == counts[1]


def _diff(host: Host, path: str, old_path: str | None, new_path: str | None) -> str:
    """Return the diff of two files on the host when both (or the one present) are text."""
    for candidate in (old_path, new_path):
        if candidate is not None and not is_text(host, candidate):
            return ""
    before = host.read_text(old_path) if old_path else None
    after = host.read_text(new_path) if new_path else None
    return unified_diff(path, before, after)


def restore_file(host: Host, path: str, backup: str, expected_sha256: str) -> FileChange:
    """Put path back from backup, content, mode and owner, after backing up what is there now.

    The copy goes through a temporary name beside path, so path is never half written.
    """
    found = host.sha256(backup)
    if found != expected_sha256:
        raise GpurunError(
            f"backup {backup} on host {host.name} has SHA-256 {found}, but the run recorded "
            f"{expected_sha256} for {path} before changing it\n  next step: the backup was "
            f"changed or lost; restore {path} by hand; nothing more was changed"
        )
    before_sha = host.sha256(path)
    diff = _diff(host, path, path if before_sha else None, backup)
    own_backup = host.backup(path)
    target = PurePosixPath(path)
    temporary = target.with_name(f".{target.name}.gpurun-restore")
    host.run(["mkdir", "-p", str(target.parent)])
    host.run(["cp", "-a", "--", backup, str(temporary)])
    host.run(["mv", "-f", "--", str(temporary), path])
    change = FileChange(
        path=path,
        action="modified" if before_sha else "created",
        sha256_before=before_sha,
        sha256_after=host.sha256(path),
        backup=own_backup,
        diff=diff,
    )
    host.record_change(change)
    return change


def remove_file(host: Host, path: str) -> FileChange | None:
    """Remove a file the earlier run created, keeping a backup; None if it is gone already."""
    before_sha = host.sha256(path)
    if before_sha is None:
        return None
    diff = _diff(host, path, path, None)
    own_backup = host.backup(path)
    host.run(["rm", "-f", "--", path])
    change = FileChange(path=path, action="removed", sha256_before=before_sha,
                        sha256_after=None, backup=own_backup, diff=diff)
    host.record_change(change)
    return change


def remove_packages(host: Host, versions: dict[str, str], package_format: str) -> None:
    """Remove (and purge) the packages in one transaction, so dpkg or rpm orders them."""
    names = list(versions)
    if package_format == "deb":
        argv = ["dpkg", "--purge", *names]
    elif package_format == "rpm":
        argv = ["rpm", "-e", *names]
    else:
        raise NotImplementedError(
            f"package format {package_format!r} is not supported: use deb or rpm")
    host.run(argv, timeout=600, hint="another installed package may depend on these; remove "
                                     "it first or remove these packages by hand")
    for name, version in versions.items():
        host.record_change(FileChange(
            path=f"package {name}", action="package-removed", sha256_before=None,
            sha256_after=None, backup=None, version_before=version, version_after=None))


def stop_unit(host: Host, unit: str, state_before: str) -> None:
    host.run(["systemctl", "stop", unit], timeout=120,
             hint=f"see `journalctl -u {unit} -n 50` on the host")
    service.record_unit_state(host, unit, "service-stopped", state_before, "inactive")


def disable_unit(host: Host, unit: str, state_before: str) -> None:
    host.run(["systemctl", "disable", unit])
    service.record_unit_state(host, unit, "service-disabled", state_before, "disabled")


def enable_unit(host: Host, unit: str, state_before: str) -> None:
    host.run(["systemctl", "enable", unit])
    service.record_unit_state(host, unit, "service-enabled", state_before, "enabled")


def start_unit(host: Host, unit: str, state_before: str) -> None:
    host.run(["systemctl", "start", unit], timeout=120,
             hint=f"see `journalctl -u {unit} -n 50` on the host")
    service.record_unit_state(host, unit, "service-started", state_before, "active")


def enable_snap(host: Host, snap: str) -> None:
    """Start a snap's services and enable them at boot, undoing `snap stop --disable`."""
    host.run(["snap", "start", "--enable", snap], timeout=180)
    host.record_change(FileChange(path=f"snap {snap}", action="snap-enabled", sha256_before=None,
                                  sha256_after=None, backup=None, version_before="disabled",
                                  version_after="enabled"))


def restart_unit(host: Host, unit: str) -> None:
    """Restart a unit so it runs the restored binaries and configuration."""
    host.run(["systemctl", "restart", unit], timeout=120,
             hint=f"see `journalctl -u {unit} -n 50` on the host")
    service.record_unit_state(host, unit, "service-restarted", "active", "active")


def delete_group(host: Host, group: str) -> None:
    host.run(["groupdel", group])
    host.record_change(FileChange(path=f"group {group}", action="group-deleted",
                                  sha256_before=None, sha256_after=None, backup=None))
