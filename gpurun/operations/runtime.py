"""Register the nvidia runtime with dockerd and apply it, restoring the old config on failure."""

from __future__ import annotations

import time
from typing import Any

from gpurun import daemon_config
from gpurun.errors import ConfigError
from gpurun.facts import docker as docker_facts
from gpurun.host import Host
from gpurun.operations import service


def runtime_state(info: dict[str, Any] | None) -> tuple[set[str], str | None]:
    """Return the runtimes and the default runtime that `docker info` reports."""
    if not info:
        return set(), None
    return set((info.get("Runtimes") or {}).keys()), info.get("DefaultRuntime")


def shows_wanted(info: dict[str, Any] | None, name: str, make_default: bool) -> bool:
    runtimes, default = runtime_state(info)
    return name in runtimes and (default == name) == make_default


def check_config_rules(
    host: Host, config: dict[str, Any], command_line: daemon_config.CommandLine
) -> list[str]:
    """Return what dockerd would reject in config: the rules `dockerd --validate` checks."""
    problems = []
    for key in daemon_config.conflicts(config, command_line):
        problems.append(f"{key} is set both on the dockerd command line and in daemon.json")
    runtimes = set(config.get("runtimes", {})) | set(command_line.runtimes()) | {"runc"}
    default = config.get("default-runtime") or command_line.value("default-runtime")
    if default and default not in runtimes:
        problems.append(f"default-runtime {default!r} is not a defined runtime")
    for name, entry in config.get("runtimes", {}).items():
        path = entry.get("path", "") if isinstance(entry, dict) else ""
        if not path or not host.succeeds(["test", "-x", path]):
            problems.append(f"runtime {name!r} path {path!r} is not an executable file")
    return problems


def apply_daemon_json(
    host: Host,
    path: str,
    before: str | None,
    wanted: dict[str, Any],
    name: str,
    make_default: bool,
) -> str:
    """Write daemon.json, make dockerd load it, and confirm; put the old file back on failure.

    dockerd reloads runtimes and default-runtime on SIGHUP, so a reload is tried first and a
    restart only when `docker info` does not show the change.
    """
    text = daemon_config.render_daemon_json(wanted)
    host.write_text(path, text)
    how = "reloaded"
    host.run(["systemctl", "reload", "docker"], check=False)
    info = _settled_info(host, name, make_default)
    if not shows_wanted(info, name, make_default):
        how = "restarted"
        host.run(["systemctl", "restart", "docker"], check=False, timeout=120)
        info = _settled_info(host, name, make_default)
    if shows_wanted(info, name, make_default):
        return how

    _restore(host, path, before)
    runtimes, default = runtime_state(info)
    raise ConfigError(
        f"dockerd on host {host.name} did not take the new {path}: docker info shows runtimes "
        f"{sorted(runtimes)} and default {default!r}\n"
        f"--- configuration tried ---\n{text}"
        f"--- configuration restored ---\n{before or '(no file)'}\n"
        f"  next step: see `journalctl -u docker -n 50` on the host"
    )


def _settled_info(host: Host, name: str, make_default: bool) -> dict[str, Any] | None:
    deadline = time.monotonic() + 30
    info = None
    while time.monotonic() < deadline:
        info = docker_facts.docker_info(host)
        if shows_wanted(info, name, make_default):
            return info
        time.sleep(1)
    return info


def _restore(host: Host, path: str, before: str | None) -> None:
    if before is None:
        host.remove(path)
    else:
        host.write_text(path, before)
    host.run(["systemctl", "restart", "docker"], check=False, timeout=120)
    service.wait_for_api(host, timeout=60)
