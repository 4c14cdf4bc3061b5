"""How to reach a host: its address, login and ssh options, and opening the connection."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from plumbum import SshMachine, local
from plumbum.machines.base import BaseMachine

from gpurun.errors import ConnectionFailed

LOCAL_ADDRESSES = ("local", "localhost-local")

# ssh exit status 255 means ssh itself failed, before any remote command ran.
SSH_FAILURE = 255


@dataclass(frozen=True)
class HostSpec:
    """Where a host is and how to log in. Holds no secrets: keys are named by path."""

    name: str
    address: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    known_hosts_file: str | None = None
    ssh_options: tuple[str, ...] = field(default_factory=tuple)
    become: bool = False
    # The name of an environment variable on the control node that holds the sudo password.
    sudo_password_env: str | None = None
    # A folder searched before the host's PATH: where gpurun installed docker, if not /usr/bin.
    path_prefix: str | None = None

    @property
    def is_local(self) -> bool:
        return self.address in LOCAL_ADDRESSES

    @property
    def needs_sudo(self) -> bool:
        return self.become and self.user != "root"

    def ssh_option_args(self) -> list[str]:
        """Return the ssh options every connection to this host uses."""
        control_dir = Path(os.environ.get("GPURUN_SSH_CONTROL_DIR", "/tmp/gpurun-ssh"))
        control_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        args = [
            "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=10",
            "-o", "ServerAliveInterval=15",
            # One shared connection per host makes the many small commands of a step cheap.
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={control_dir}/%C",
            "-o", "ControlPersist=60s",
        ]
        if self.known_hosts_file:
            args += ["-o", f"UserKnownHostsFile={self.known_hosts_file}",
                     "-o", "StrictHostKeyChecking=yes"]
        args += list(self.ssh_options)
        return args

    def ssh_argv(self, command: list[str] | None = None) -> list[str]:
        """Return a full ssh command line for an operator to reach this host."""
        argv = ["ssh", *self.ssh_option_args(), "-p", str(self.port)]
        if self.key_file:
            argv += ["-i", self.key_file]
        argv.append(f"{self.user}@{self.address}")
        if command:
            argv.append(shlex.join(command))
        return argv


def connect(spec: HostSpec) -> BaseMachine:
    """Open a plumbum machine for the host: local execution or the system ssh client."""
    if spec.is_local:
        machine: BaseMachine = local
    else:
        machine = _ssh_machine(spec)
    if spec.path_prefix:
        machine.env.path.insert(0, spec.path_prefix)
    return machine


def _ssh_machine(spec: HostSpec) -> BaseMachine:
    try:
        return SshMachine(
            spec.address,
            user=spec.user,
            port=spec.port,
            keyfile=spec.key_file,
            ssh_opts=spec.ssh_option_args(),
            scp_opts=spec.ssh_option_args(),
            connect_timeout=30,
        )
    except Exception as error:  # plumbum raises several unrelated types on a failed login
        raise ConnectionFailed(
            f"cannot connect to host {spec.name} ({spec.user}@{spec.address}:{spec.port}): "
            f"{_first_line(error)}\n"
            f"  next step: try `{shlex.join(spec.ssh_argv(['true']))}` and fix what ssh reports"
        ) from error


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    for line in text.splitlines():
        if "Permission denied" in line or "Host key verification failed" in line:
            return line.strip()
    return text.splitlines()[0] if text else type(error).__name__
