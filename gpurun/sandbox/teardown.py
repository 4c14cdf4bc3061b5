"""Remove a sandbox host completely: container, mounts, network, keys, inventory entry, folder."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from pathlib import Path

from gpurun.errors import GpurunError, SandboxError
from gpurun.sandbox.inventory import remove_inventory_host
from gpurun.sandbox.keys import remove_known_host
from gpurun.sandbox.locks import file_lock
from gpurun.sandbox.mounts import mounts_under, unmount_all_under
from gpurun.sandbox.network import netns_pids, remove_network
from gpurun.sandbox.nspawn import remove_propagate_folder, stop_container
from gpurun.sandbox.paths import StateLayout
from gpurun.sandbox.records import HostRecord, load_record

log = logging.getLogger("gpurun.sandbox")

ORPHAN_EXIT_WAIT_S = 10.0


def remove_host(state: StateLayout, name: str) -> None:
    """Undo everything `up` made for host `name`, also when `up` stopped half-way.

    Each step skips what is already gone. The host folder is deleted only once nothing is
    mounted under it, so that the deletion cannot reach into another file system.
    """
    layout = state.host(name)
    record: HostRecord | None = None
    if layout.record.exists():
        try:
            record = load_record(layout.record)
        except SandboxError as error:
            log.warning("%s (removing what can be found by name)", error)

    if record is not None:
        stop_container(name, record.pid, layout, record.init)
    _kill_orphans(name)
    unmount_all_under(layout.dir, host=name)
    remove_network(name, record.index if record else None)
    remove_propagate_folder(name)

    if record is not None:
        _forget_host(state, record)

    left_mounted = mounts_under(layout.dir)
    if left_mounted:
        raise SandboxError(
            f"sandbox host {name} still has mounts under {layout.dir}: "
            f"{', '.join(map(str, left_mounted))}. Unmount them, then run "
            f"'gpurun sandbox down {name}' again"
        )
    if layout.dir.exists():
        shutil.rmtree(layout.dir)


def _kill_orphans(name: str) -> None:
    # Processes left in the netns belong to a container whose nspawn died or was never
    # recorded. Killing them lets the netns and the mounts go.
    orphans = netns_pids(name)
    if not orphans:
        return
    log.warning("sandbox %s: killing processes left in its netns: %s", name, orphans)
    for pid in orphans:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    deadline = time.monotonic() + ORPHAN_EXIT_WAIT_S
    while netns_pids(name) and time.monotonic() < deadline:
        time.sleep(0.1)


def _forget_host(state: StateLayout, record: HostRecord) -> None:
    with file_lock(state.lock_file):
        remove_known_host(state.known_hosts, record.address)
        if record.inventory_file:
            try:
                remove_inventory_host(Path(record.inventory_file), record.name)
            except GpurunError as error:
                # The host is gone either way, so a broken inventory must not keep its folder.
                log.warning("could not remove %s from its inventory: %s", record.name, error)
