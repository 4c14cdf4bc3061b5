"""Start, list, reach and remove sandbox hosts: local Debian hosts booted with systemd-nspawn."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from gpurun.errors import SandboxError
from gpurun.sandbox.boot import reserve_host, start_host, wait_until_ready
from gpurun.sandbox.image import ensure_base
from gpurun.sandbox.inventory import DEFAULT_INVENTORY, set_inventory_host
from gpurun.sandbox.keys import ensure_client_key
from gpurun.sandbox.locks import file_lock
from gpurun.sandbox.nspawn import INITS
from gpurun.sandbox.paths import StateLayout, resolve_state_dir, validate_host_name
from gpurun.sandbox.records import load_record
from gpurun.sandbox.rpm_host import PACKAGE_TOOLS
from gpurun.sandbox.sandbox_host import SandboxHost, host_from_record
from gpurun.sandbox.teardown import remove_host

__all__ = ["SandboxHost", "down", "list_hosts", "ssh_argv", "up"]

log = logging.getLogger("gpurun.sandbox")


def _require_control_node_tools() -> None:
    if os.geteuid() != 0:
        raise SandboxError(
            "sandbox hosts need root on the control node (mounts, network namespaces, "
            "systemd-nspawn). Run gpurun sandbox as root"
        )
    if shutil.which("systemd-nspawn") is None:
        raise SandboxError(
            "systemd-nspawn is missing on the control node. "
            "Install it with: apt-get install systemd-container"
        )


def _known_names(state: StateLayout) -> list[str]:
    if not state.hosts_dir.is_dir():
        return []
    return sorted(folder.name for folder in state.hosts_dir.iterdir() if folder.is_dir())


def _unknown_hosts_error(state: StateLayout, names: list[str]) -> SandboxError:
    known = ", ".join(_known_names(state)) or "none"
    return SandboxError(
        f"unknown sandbox host {', '.join(names)}. Known hosts: {known}. "
        f"Start a host with 'gpurun sandbox up NAME'"
    )


def _existing_host(state: StateLayout, name: str) -> SandboxHost | None:
    record_file = state.host(name).record
    if not record_file.exists():
        return None
    return host_from_record(state, load_record(record_file))


def up(
    names: list[str],
    *,
    init: str = "systemd",
    package_tool: str = "dpkg",
    state_dir: Path | None = None,
    inventory: Path | None = None,
) -> list[SandboxHost]:
    """Boot the named hosts and return them once ssh logs in to each (and systemd has booted).

    `package_tool` "rpm" makes each new host stand in for an RPM distribution: rpm gets a
    database that owns the base system, and the inventory sets package_format: rpm.

    A host that is already running is returned unchanged. A leftover of a host that is not
    running is removed first. If any host fails, every host this call started is removed
    again. The hosts are added to the inventory, parameters/sandbox.yaml by default.
    """
    for name in names:
        validate_host_name(name)
    if init not in INITS:
        raise SandboxError(f"invalid sandbox init {init!r}: use one of {', '.join(INITS)}")
    if package_tool not in PACKAGE_TOOLS:
        raise SandboxError(
            f"invalid sandbox package tool {package_tool!r}: use one of {', '.join(PACKAGE_TOOLS)}"
        )
    _require_control_node_tools()

    state = resolve_state_dir(state_dir)
    inventory_file = (inventory or DEFAULT_INVENTORY).absolute()
    base_rootfs = ensure_base(state.root)
    with file_lock(state.lock_file):
        ensure_client_key(state.client_key)

    ready: dict[str, SandboxHost] = {}
    new_names: list[str] = []
    try:
        booting = []
        for name in dict.fromkeys(names):
            existing = _existing_host(state, name)
            if existing is not None and existing.running:
                if existing.init != init:
                    log.warning("sandbox %s is already running with init %s", name, existing.init)
                if existing.package_tool != package_tool:
                    log.warning("sandbox %s is already running with package tool %s",
                                name, existing.package_tool)
                ready[name] = existing
                continue
            if existing is not None or state.host(name).dir.exists():
                log.info("removing the stopped sandbox host %s before starting it again", name)
                remove_host(state, name)

            record = reserve_host(state, name, init, base_rootfs, inventory_file, package_tool)
            new_names.append(name)
            booting.append(start_host(state, record))

        for record in booting:
            host = host_from_record(state, record)
            wait_until_ready(host, state.host(record.name))
            with file_lock(state.lock_file):
                set_inventory_host(inventory_file, host.name, host.inventory_variables())
            ready[host.name] = host
            log.info("sandbox %s is up at %s", host.name, host.address)
    except BaseException:
        _remove_after_failure(state, new_names)
        raise

    return [ready[name] for name in names]


def _remove_after_failure(state: StateLayout, names: list[str]) -> None:
    for name in names:
        try:
            remove_host(state, name)
        except Exception:
            log.exception("could not remove the half-started sandbox host %s", name)


def down(names: list[str] | None = None, *, state_dir: Path | None = None) -> None:
    """Power off and remove the named hosts, or every host when `names` is None."""
    state = resolve_state_dir(state_dir)
    known = _known_names(state)
    if names is None:
        names = known

    unknown = [name for name in names if name not in known]
    if unknown:
        raise _unknown_hosts_error(state, unknown)

    if names:
        _require_control_node_tools()
    for name in names:
        remove_host(state, name)
        log.info("sandbox %s is removed", name)


def list_hosts(*, state_dir: Path | None = None) -> list[SandboxHost]:
    """Return every host in the state directory, with `running` checked against its live pid."""
    state = resolve_state_dir(state_dir)
    hosts = []
    for name in _known_names(state):
        host = _existing_host(state, name)
        if host is not None:
            hosts.append(host)
    return hosts


def ssh_argv(name: str, command: list[str], *, state_dir: Path | None = None) -> list[str]:
    """Return the full ssh command line that runs `command` (an argv list) on host `name`."""
    state = resolve_state_dir(state_dir)
    host = _existing_host(state, name)
    if host is None:
        raise _unknown_hosts_error(state, [name])
    return host.ssh_argv(command)
