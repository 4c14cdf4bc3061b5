"""systemd units for containerd and Docker, the docker group, and starting the daemon."""

from __future__ import annotations

import time
from importlib import resources
from string import Template

from gpurun.errors import RemoteCommandError
from gpurun.facts import systemd as systemd_facts
from gpurun.host import Host
from gpurun.host.changes import FileChange

UNIT_DIR = "/etc/systemd/system"
UNITS = ["containerd.service", "docker.socket", "docker.service"]
DOCKER_GROUP = "docker"


def render_unit(name: str, bin_dir: str) -> str:
    """Return a unit file from the package's templates with bin_dir filled in."""
    template = resources.files("gpurun.templates").joinpath(name).read_text()
    return Template(template).substitute(bin_dir=bin_dir)


def has_group(host: Host, group: str) -> bool:
    return host.succeeds(["getent", "group", group])


def create_system_group(host: Host, group: str) -> None:
    host.run(["groupadd", "--system", group])
    # Journalled so that a rollback of this run deletes the group again.
    host.record_change(FileChange(path=f"group {group}", action="group-created",
                                  sha256_before=None, sha256_after=None, backup=None))


def reload_and_verify_units(host: Host, paths: list[str]) -> None:
    """Make systemd read the new units, then let systemd-analyze check them before any start."""
    host.run(["systemctl", "daemon-reload"])
    result = host.run(["systemd-analyze", "verify", *paths], check=False)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if any(path in line for path in paths) or "docker" in line]
    if not result.ok or problems:
        raise RemoteCommandError(
            host.name, ["systemd-analyze", "verify", *paths], result.exit_code,
            result.stdout, result.stderr,
            "fix the unit named above (gpurun rendered it from its templates), then run again",
        )


def enable(host: Host, unit: str) -> None:
    before = systemd_facts.unit(host, unit).file_state or "not-found"
    host.run(["systemctl", "enable", unit])
    record_unit_state(host, unit, "service-enabled", before, "enabled")


def start_or_restart(host: Host, unit: str, restart: bool) -> None:
    """Start a unit, or restart it when its file changed while it ran."""
    before = systemd_facts.unit(host, unit).active_state
    verb = "restart" if restart else "start"
    host.run(["systemctl", verb, unit], timeout=120,
             hint=f"see `journalctl -u {unit} -n 50` on the host")
    record_unit_state(host, unit, f"service-{verb}ed", before, "active")


def record_unit_state(host: Host, unit: str, action: str, before: str, after: str) -> None:
    """Journal a unit's state change, so that a rollback can put the state back.

    The version fields of the entry hold the unit's state: its UnitFileState for
    service-enabled, its ActiveState for service-started and service-restarted.
    """
    host.record_change(FileChange(path=f"unit {unit}", action=action, sha256_before=None,
                                  sha256_after=None, backup=None, version_before=before,
                                  version_after=after))


def wait_for_api(host: Host, timeout: float = 60) -> str:
    """Wait until the Docker API answers; return the server version."""
    deadline = time.monotonic() + timeout
    while True:
        result = host.run(["docker", "version", "--format", "{{.Server.Version}}"], check=False)
        if result.ok and result.stdout.strip():
            return result.stdout.strip()
        if time.monotonic() > deadline:
            raise RemoteCommandError(
                host.name, ["docker", "version"], result.exit_code, result.stdout, result.stderr,
                "dockerd did not answer in time: see `journalctl -u docker -n 50` on the host",
            )
        time.sleep(1)
