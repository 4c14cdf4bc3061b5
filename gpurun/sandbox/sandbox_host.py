"""SandboxHost: how to reach one sandbox host, as `up` and `list_hosts` return it."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpurun.sandbox.nspawn import is_container_running
from gpurun.sandbox.paths import StateLayout
from gpurun.sandbox.records import HostRecord

SSH_PORT = 22
SSH_USER = "root"


@dataclass(frozen=True)
class SandboxHost:
    """A sandbox host: its address, ssh login, root folder on the control node, init and pid."""

    name: str
    address: str
    port: int
    user: str
    key_file: Path
    known_hosts_file: Path
    root_dir: Path
    init: str
    pid: int | None
    running: bool = True
    package_tool: str = "dpkg"

    def ssh_argv(self, command: list[str], *, connect_timeout: int = 10) -> list[str]:
        """Return the ssh command line that runs `command` (an argv list) on this host.

        Each word of `command` is shell-quoted, so the remote shell parses it back to the same argv.
        An empty `command` opens a login shell.
        """
        options = {
            "IdentitiesOnly": "yes",
            "UserKnownHostsFile": str(self.known_hosts_file),
            "GlobalKnownHostsFile": "/dev/null",
            "StrictHostKeyChecking": "yes",
            "BatchMode": "yes",
            "ConnectTimeout": str(connect_timeout),
        }
        argv = ["ssh", "-i", str(self.key_file), "-p", str(self.port), "-l", self.user]
        for option, value in options.items():
            argv += ["-o", f"{option}={value}"]

        # "--" ends ssh's options, so a command word starting with "-" is not taken as one.
        argv += ["--", self.address]
        if command:
            argv.append(shlex.join(command))
        return argv

    def inventory_variables(self) -> dict[str, Any]:
        """Return this host's entry for an Ansible-style inventory."""
        variables: dict[str, Any] = {
            "ansible_host": self.address,
            "ansible_port": self.port,
            "ansible_user": self.user,
            "ansible_ssh_private_key_file": str(self.key_file),
            "gpurun_known_hosts_file": str(self.known_hosts_file),
            "gpurun_sandbox_init": self.init,
        }
        if self.user != "root":
            variables["ansible_become"] = True
        if self.package_tool == "rpm":
            # The host is Debian underneath, so detection from os-release would say deb.
            variables["package_format"] = "rpm"
        return variables


def host_from_record(state: StateLayout, record: HostRecord) -> SandboxHost:
    layout = state.host(record.name)
    return SandboxHost(
        name=record.name,
        address=record.address,
        port=SSH_PORT,
        user=SSH_USER,
        key_file=state.client_key,
        known_hosts_file=state.known_hosts,
        root_dir=layout.root,
        init=record.init,
        pid=record.pid,
        running=is_container_running(record.pid, layout),
        package_tool=record.package_tool,
    )
