"""Each sandbox host's own network: a netns with one veth link to the control node.

Host number n gets 10.213.n.1 on the control node's end and 10.213.n.2 on the host's end.
The host has no default route, so its traffic can reach only the control node. That matters
because dockerd 20.10 gives containers public DNS servers when the host has no resolv.conf.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

from gpurun.errors import SandboxError
from gpurun.sandbox.commands import run_checked

SUBNET_PREFIX = "10.213"
HOST_INDEXES = range(1, 255)
NETNS_DIR = Path("/run/netns")
NET_DEVICES_DIR = Path("/sys/class/net")

# The host's end is renamed to eth0 inside its netns, so the host looks like a plain machine.
HOST_INTERFACE = "eth0"

# How long the kernel may take to drop a veth pair after its netns is deleted.
VETH_REMOVAL_WAIT_S = 3.0


def netns_name(name: str) -> str:
    return f"gpurun-{name}"


def control_interface(index: int) -> str:
    """Return the control node's end of host `index`'s veth pair (at most 15 characters)."""
    return f"gsbx{index}"


def control_address(index: int) -> str:
    return f"{SUBNET_PREFIX}.{index}.1"


def host_address(index: int) -> str:
    return f"{SUBNET_PREFIX}.{index}.2"


def _addresses_in_use() -> set[str]:
    # Another state directory (a parallel test run) may use the same numbers.
    output = run_checked(
        ["ip", "-o", "-4", "addr", "show"],
        host=None,
        next_step="install iproute2",
    )
    addresses = set()
    for line in output.splitlines():
        words = line.split()
        if "inet" in words:
            cidr = words[words.index("inet") + 1]
            addresses.add(str(ipaddress.ip_interface(cidr).ip))
    return addresses


def allocate_index(reserved: set[int]) -> int:
    """Return the lowest host number free in the state and on the control node's interfaces."""
    in_use = _addresses_in_use()
    for index in HOST_INDEXES:
        if index in reserved or control_address(index) in in_use:
            continue
        if (NET_DEVICES_DIR / control_interface(index)).exists():
            continue
        return index
    raise SandboxError(
        f"no free sandbox network: all {len(HOST_INDEXES)} numbers of {SUBNET_PREFIX}.N.0/24 "
        f"are in use. Remove hosts with 'gpurun sandbox down NAME'"
    )


def create_network(name: str, index: int) -> None:
    """Create host `name`'s netns and veth pair and address both ends."""
    netns = netns_name(name)
    interface = control_interface(index)
    next_step = f"remove the half-made network with 'gpurun sandbox down {name}'"

    veth_pair = ["type", "veth", "peer", "name", HOST_INTERFACE, "netns", netns]
    steps = [
        ["ip", "netns", "add", netns],
        ["ip", "link", "add", interface, *veth_pair],
        ["ip", "addr", "add", f"{control_address(index)}/24", "dev", interface],
        ["ip", "link", "set", interface, "up"],
        ["ip", "-n", netns, "addr", "add", f"{host_address(index)}/24", "dev", HOST_INTERFACE],
        ["ip", "-n", netns, "link", "set", HOST_INTERFACE, "up"],
        ["ip", "-n", netns, "link", "set", "lo", "up"],
    ]
    for argv in steps:
        run_checked(argv, host=name, next_step=next_step)


def netns_pids(name: str) -> list[int]:
    """Return the pids of the processes that live in host `name`'s netns."""
    if not (NETNS_DIR / netns_name(name)).exists():
        return []
    output = run_checked(
        ["ip", "netns", "pids", netns_name(name)],
        host=name,
        next_step="check the netns with 'ip netns list'",
    )
    return [int(word) for word in output.split()]


def remove_network(name: str, index: int | None) -> None:
    """Delete host `name`'s netns and veth pair, skipping the parts that are already gone."""
    netns = netns_name(name)
    next_step = "check with 'ip netns list' and 'ip link' what holds it"

    if (NETNS_DIR / netns).exists():
        run_checked(["ip", "netns", "delete", netns], host=name, next_step=next_step)

    # Deleting the netns deletes the veth pair too, but the kernel does that a moment later.
    if index is None:
        return
    device = NET_DEVICES_DIR / control_interface(index)
    deadline = time.monotonic() + VETH_REMOVAL_WAIT_S
    while device.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if device.exists():
        run_checked(["ip", "link", "delete", device.name], host=name, next_step=next_step)
