"""Prepare one sandbox host on the control node, start it, and wait until it is usable."""

from __future__ import annotations

import logging
import subprocess
import time
import uuid
from pathlib import Path

from gpurun.errors import SandboxError
from gpurun.sandbox.commands import run_checked
from gpurun.sandbox.keys import add_known_host, authorize_client_key, make_host_key
from gpurun.sandbox.locks import file_lock
from gpurun.sandbox.network import allocate_index, create_network, host_address
from gpurun.sandbox.nspawn import is_container_running, start_container
from gpurun.sandbox.paths import HostLayout, StateLayout
from gpurun.sandbox.records import HostRecord, load_record, save_record
from gpurun.sandbox.rpm_host import make_rpm_host
from gpurun.sandbox.sandbox_host import SandboxHost

log = logging.getLogger("gpurun.sandbox")

# An estimate with a wide margin. A minbase host booted in about 2 s on a 2-core machine.
READY_TIMEOUT_S = 120.0
LOG_TAIL_LINES = 20

# systemctl is-system-running prints these once boot has finished. Degraded means a unit failed.
READY_SYSTEM_STATES = ("running", "degraded")


def _reserved_indexes(state: StateLayout) -> set[int]:
    if not state.hosts_dir.is_dir():
        return set()
    return {
        load_record(folder / "host.json").index
        for folder in state.hosts_dir.iterdir()
        if (folder / "host.json").exists()
    }


def reserve_host(
    state: StateLayout,
    name: str,
    init: str,
    base_rootfs: Path,
    inventory_file: Path,
    package_tool: str = "dpkg",
) -> HostRecord:
    """Give host `name` a number and an address, and write its record before anything is made.

    The record comes first, so that a `down` after any later failure finds what to remove.
    """
    layout = state.host(name)
    with file_lock(state.lock_file):
        if layout.dir.exists():
            raise SandboxError(
                f"sandbox host {name} is already being started by another process. "
                f"Wait for it, or remove it with 'gpurun sandbox down {name}'"
            )
        index = allocate_index(_reserved_indexes(state))
        layout.dir.mkdir(parents=True)
        record = HostRecord(
            name=name,
            index=index,
            address=host_address(index),
            init=init,
            base_rootfs=str(base_rootfs),
            inventory_file=str(inventory_file),
            package_tool=package_tool,
        )
        save_record(layout.record, record)
    return record


def start_host(state: StateLayout, record: HostRecord) -> HostRecord:
    """Make the network, root and keys of a reserved host and start its container."""
    name = record.name
    layout = state.host(name)
    create_network(name, record.index)

    for folder in (layout.upper, layout.work, layout.root, layout.docker_data):
        folder.mkdir()
    overlay_options = f"lowerdir={record.base_rootfs},upperdir={layout.upper},workdir={layout.work}"
    run_checked(
        ["mount", "-t", "overlay", "overlay", "-o", overlay_options, str(layout.root)],
        host=name,
        next_step="check that the kernel has overlayfs (grep overlay /proc/filesystems)",
    )

    host_public_key = _personalize_root(layout.root, name, state.client_key)
    if record.package_tool == "rpm":
        make_rpm_host(layout.root, name)
    with file_lock(state.lock_file):
        add_known_host(state.known_hosts, record.address, host_public_key)

    started = record.with_pid(start_container(name, layout, record.init))
    save_record(layout.record, started)
    return started


def _personalize_root(root: Path, name: str, client_key: Path) -> str:
    # These writes land in the host's upper layer, so the shared base stays untouched.
    (root / "etc/hostname").write_text(f"{name}\n")
    (root / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
    )
    (root / "etc/machine-id").write_text(f"{uuid.uuid4().hex}\n")
    authorize_client_key(root, client_key)
    return make_host_key(root, name)


def _log_tail(layout: HostLayout) -> str:
    try:
        lines = layout.log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "  (no log written)"
    return "\n".join("  " + line for line in lines[-LOG_TAIL_LINES:])


def _not_ready_error(host: SandboxHost, layout: HostLayout, problem: str) -> SandboxError:
    return SandboxError(
        f"sandbox host {host.name} at {host.address} {problem}. "
        f"The container's log is {layout.log}, ending with:\n{_log_tail(layout)}\n"
        f"Next step: read the log, then remove the host with 'gpurun sandbox down {host.name}'"
    )


def _ssh(host: SandboxHost, command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        host.ssh_argv(command, connect_timeout=3),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_until_ready(
    host: SandboxHost, layout: HostLayout, timeout: float = READY_TIMEOUT_S
) -> None:
    """Wait until ssh logs in with gpurun's key and, under systemd, boot has finished.

    Raises SandboxError with the tail of the container's log when the container stops or
    `timeout` seconds pass.
    """
    deadline = time.monotonic() + timeout
    last_output = ""
    while True:
        if not is_container_running(host.pid, layout):
            raise _not_ready_error(host, layout, "stopped while booting")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _not_ready_error(
                host,
                layout,
                f"timed out after {timeout:.0f} s waiting for ssh ({last_output.strip()})",
            )
        try:
            result = _ssh(host, ["true"], timeout=min(remaining, 10))
        except subprocess.TimeoutExpired:
            continue
        if result.returncode == 0:
            break
        last_output = result.stderr
        time.sleep(0.5)

    if host.init == "systemd":
        _wait_for_systemd(host, layout, deadline)


def _wait_for_systemd(host: SandboxHost, layout: HostLayout, deadline: float) -> None:
    remaining = max(deadline - time.monotonic(), 1.0)
    try:
        result = _ssh(host, ["systemctl", "is-system-running", "--wait"], timeout=remaining)
    except subprocess.TimeoutExpired as error:
        raise _not_ready_error(host, layout, "timed out while systemd was booting") from error

    system_state = result.stdout.strip()
    if system_state not in READY_SYSTEM_STATES:
        raise _not_ready_error(
            host, layout, f"finished booting in state {system_state or result.stderr.strip()!r}"
        )
    if system_state == "degraded":
        failed = _ssh(host, ["systemctl", "--failed", "--no-legend", "--plain"], timeout=30)
        log.warning("sandbox %s booted degraded, failed units:\n%s", host.name, failed.stdout)
