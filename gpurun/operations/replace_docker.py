"""Take a Docker that gpurun did not install out of the way, before gpurun's binaries go in.

Only the docker-binaries step calls this, and only with replace_existing set. Each daemon is
stopped the way it was started (its systemd unit, the snap, or SIGTERM to a hand-started
process) and is never killed, so no second daemon ever runs on the same data root.
"""

from __future__ import annotations

from gpurun.errors import GpurunError
from gpurun.facts import existing_docker
from gpurun.facts import systemd as systemd_facts
from gpurun.host import Host
from gpurun.host.changes import FileChange
from gpurun.operations import background


def stop_and_disable_units(host: Host, units: list[str]) -> None:
    """Stop the units and keep them from starting at boot, in the order given (sockets first)."""
    for name in units:
        unit = systemd_facts.unit(host, name)
        host.run(["systemctl", "disable", "--now", name], timeout=180,
                 hint=f"see `journalctl -u {name} -n 50` on the host")
        _record(host, f"unit {name}", "service-disabled",
                f"{unit.file_state}, {unit.active_state}", "disabled, inactive")


def stop_daemon(host: Host, daemon: existing_docker.ForeignDaemon,
                timeout: float = background.STOP_TIMEOUT_S) -> None:
    """Stop a hand-started containerd or dockerd with SIGTERM and wait until it exits."""
    host.run(["kill", "-TERM", str(daemon.pid)], check=False)
    if not background.wait_for_exit(host, daemon.pid, timeout):
        raise GpurunError(
            f"{daemon.description} on host {host.name} is still running {timeout:.0f} s after "
            f"SIGTERM, so gpurun installed nothing\n  next step: find out what it waits for "
            f"(its log), stop it by hand, then run the step again"
        )
    _record(host, f"process {daemon.program}", "process-stopped",
            f"pid {daemon.pid}: {daemon.exe}", None)


def disable_snap(host: Host) -> None:
    """Stop the docker snap's services and keep them from starting at boot."""
    host.run(["snap", "stop", "--disable", existing_docker.SNAP_NAME], timeout=180)
    _record(host, f"snap {existing_docker.SNAP_NAME}", "snap-disabled", "enabled", "disabled")


def require_no_foreign_daemon(host: Host) -> None:
    """Raise unless every running containerd and dockerd is one gpurun started."""
    uses_systemd = host.succeeds(["test", "-d", "/run/systemd/system"])
    units = existing_docker.foreign_units(host) if uses_systemd else []
    left = existing_docker.foreign_daemons(host, units, uses_systemd)
    left_names = [daemon.description for daemon in left]
    if units or left_names:
        raise GpurunError(
            f"another Docker still runs on host {host.name} after stopping it: "
            f"{', '.join(units + left_names)}\n  next step: stop it by hand; gpurun installs "
            f"nothing while a second daemon could use the same data root"
        )


def _record(host: Host, target: str, action: str, before: str | None, after: str | None) -> None:
    host.record_change(FileChange(path=target, action=action, sha256_before=None,
                                  sha256_after=None, backup=None, version_before=before,
                                  version_after=after))
