"""Reload, restart and query dockerd, whichever way the host starts it.

Every step that needs dockerd to take a new configuration goes through these functions, so
the difference between a systemd host and one without systemd stays in this module.
"""

from __future__ import annotations

import logging
import time

from gpurun import daemon_config
from gpurun.errors import GpurunError, RemoteCommandError
from gpurun.facts import dockerd as dockerd_facts
from gpurun.facts import system as system_facts
from gpurun.host import Host
from gpurun.operations import background

log = logging.getLogger("gpurun.operations.dockerd")

UNIT = dockerd_facts.DOCKER_UNIT


def uses_systemd(host: Host) -> bool:
    return system_facts.init_system(host) == "systemd"


def _without_systemd(host: Host, action: str) -> NotImplementedError:
    return NotImplementedError(
        f"host {host.name} runs without systemd: {action} without systemd is not supported "
        f"yet, so nothing was changed"
    )


def dockerd_command_line(host: Host) -> daemon_config.CommandLine:
    """Return the command line dockerd starts with: the unit and its drop-ins, expanded.

    Without systemd: gpurun's own flags plus the extra ones in background's flags files,
    which take the place of drop-ins on such a host.
    """
    if not uses_systemd(host):
        return background.service_command_line(host).command_line
    return dockerd_facts.service_command_line(host).command_line


def reload_units(host: Host) -> None:
    """Make the service manager read changed unit files (systemctl daemon-reload).

    Without systemd there is nothing to reload: the next start reads the flags file.
    """
    if not uses_systemd(host):
        return
    host.run(["systemctl", "daemon-reload"])


def reload_dockerd(host: Host) -> bool:
    """Ask dockerd to reread daemon.json (SIGHUP); return False when the reload failed.

    dockerd reloads a subset of its options this way, the runtimes and the default runtime
    among them. A dockerd that is not running cannot reload.
    """
    if not uses_systemd(host):
        try:
            background.signal_reload(host, background.DOCKERD)
        except GpurunError as error:
            log.info("%s: reloading dockerd failed: %s", host.name, error)
            return False
        return True
    result = host.run(["systemctl", "reload", UNIT], check=False, timeout=60)
    if not result.ok:
        log.info("%s: systemctl reload %s failed: %s", host.name, UNIT, result.stderr.strip())
    return result.ok


def restart_dockerd(host: Host) -> bool:
    """Restart dockerd; return whether the service manager reports it started.

    The failure count is reset first: docker.service allows only a few starts a minute,
    and a restart that puts back an old configuration must not be refused for that.
    """
    if not uses_systemd(host):
        try:
            background.restart_dockerd(host)
        except GpurunError as error:
            log.warning("%s: restarting dockerd failed: %s", host.name, error)
            return False
        return True
    host.run(["systemctl", "reset-failed", UNIT], check=False)
    result = host.run(["systemctl", "restart", UNIT], check=False, timeout=180)
    if not result.ok:
        log.warning("%s: systemctl restart %s failed: %s", host.name, UNIT, result.stderr.strip())
    return result.ok


def is_dockerd_up(host: Host) -> bool:
    """Return whether the Docker API answers."""
    result = host.run(["docker", "version", "--format", "{{.Server.Version}}"], check=False,
                      timeout=60)
    return result.ok and bool(result.stdout.strip())


def wait_for_dockerd(host: Host, timeout: float = 60) -> bool:
    """Wait until the Docker API answers; return False when it did not within timeout s."""
    deadline = time.monotonic() + timeout
    while not is_dockerd_up(host):
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


def dockerd_log_tail(host: Host, lines: int = 20) -> str:
    """Return dockerd's last log lines, for error messages."""
    if not uses_systemd(host):
        return background.log_tail(host, background.DOCKERD, lines).strip()
    result = host.run(["journalctl", "-u", UNIT, "-n", str(lines), "--no-pager", "-o", "cat"],
                      check=False)
    return (result.stdout or result.stderr).strip()


def require_dockerd_up(host: Host, timeout: float = 60) -> None:
    """Raise RemoteCommandError when the Docker API does not answer within timeout s."""
    if not wait_for_dockerd(host, timeout):
        raise RemoteCommandError(
            host.name, ["docker", "version"], None, "", "the Docker API did not answer",
            "see `journalctl -u docker -n 50` on the host",
        )
