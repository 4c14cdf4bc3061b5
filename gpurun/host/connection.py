"""How to reach a host: its address, login and ssh options, and opening the connection."""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
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
            "-o", f"ControlPath={control_dir}/{self._connection_digest()}",
            "-o", "ControlPersist=60s",
        ]
        if self.known_hosts_file:
            args += ["-o", f"UserKnownHostsFile={self.known_hosts_file}",
                     "-o", "StrictHostKeyChecking=yes"]
        args += list(self.ssh_options)
        return args

    def login_hint(self) -> str:
        """Return a short ssh command line that an operator can type to test the login."""
        argv = ["ssh", "-p", str(self.port)]
        if self.key_file:
            argv += ["-i", self.key_file]
        if self.known_hosts_file:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts_file}"]
        return shlex.join([*argv, *self.ssh_options, f"{self.user}@{self.address}", "true"])

    def _connection_digest(self) -> str:
        """Return a short name for the shared connection of this login and these credentials.

        ssh's own %C covers host, port and user only, but a login with another key or
        known_hosts file must not reuse the connection. The name stays short because a Unix
        socket path has at most 107 bytes and ssh adds 17 while it creates the socket.
        """
        words = [self.user, self.address, str(self.port), self.key_file or "",
                 self.known_hosts_file or "", *self.ssh_options]
        return hashlib.sha256("\0".join(words).encode()).hexdigest()[:20]

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
        # plumbum may fail writing to an ssh that already exited (a broken pipe) and so lose
        # ssh's message: a plain login attempt recovers the reason.
        raise login_failed(spec, _first_line(error)) from error


def login_failed(spec: HostSpec, fallback_reason: str) -> ConnectionFailed:
    """Return the error for a failed login, with the reason a fresh login attempt gives."""
    reason = probe_login(spec, timeout_s=15) or fallback_reason
    return ConnectionFailed(
        f"cannot connect to host {spec.name} ({spec.user}@{spec.address}:{spec.port}): "
        f"{reason}\n"
        f"  next step: try `{spec.login_hint()}` and fix what ssh reports"
    )


def _first_line(error: Exception) -> str:
    # plumbum keeps what ssh printed in `stderr`; its str() is only "SSH communication failed".
    stderr = str(getattr(error, "stderr", "") or "")
    return ssh_failure_reason(f"{stderr}\n{error}") or type(error).__name__


# Messages ssh prints when a login fails, each with the reason gpurun reports. A changed host key
# also prints "Host key verification failed", so that entry comes first.
SSH_FAILURES = (
    ("REMOTE HOST IDENTIFICATION HAS CHANGED", "host key changed"),
    ("Host key verification failed", "host key not trusted (not in known_hosts)"),
    ("Permission denied", "authentication refused"),
    ("No route to host", "no route to host"),
    ("Network is unreachable", "network unreachable"),
    ("Connection refused", "connection refused"),
    ("Connection timed out", "connection timed out"),
    ("Operation timed out", "connection timed out"),
    ("Could not resolve hostname", "host name not resolved"),
)


def ssh_failure_reason(stderr: str) -> str:
    """Return the reason an ssh login failed, from what ssh printed: 'no route to host', ..."""
    for text, reason in SSH_FAILURES:
        if text in stderr:
            return reason
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def probe_login(spec: HostSpec, timeout_s: float = 30) -> str | None:
    """Log in and run `true`; return why that failed, or None when it worked.

    The login also starts the shared ssh connection (ControlMaster) that the steps reuse.
    """
    if spec.is_local:
        return None
    argv = spec.ssh_argv(["true"])
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                                stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return f"no answer within {timeout_s:.0f} s"
    if result.returncode == 0:
        return None
    return ssh_failure_reason(result.stderr) or f"ssh exited with status {result.returncode}"


def resolve_login(address: str, user: str, port: int) -> tuple[str, int]:
    """Return the user and port ssh would use for address, filling unset ones from its config.

    An empty user or port 0 takes what ~/.ssh/config gives for that host (or alias), else ssh's
    default (the local user, port 22), as Ansible does. `ssh -G` prints that resolution.
    """
    if user and port:
        return user, port
    argv = ["ssh", "-G", *(["-l", user] if user else []), *(["-p", str(port)] if port else []),
            "--", address]
    try:
        output = subprocess.run(argv, capture_output=True, text=True, timeout=10,
                                check=True).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise ConnectionFailed(
            f"cannot read ssh's configuration for {address} (`{shlex.join(argv)}`): {error}\n"
            f"  next step: set ansible_user and ansible_port for the host, or fix ~/.ssh/config"
        ) from error
    resolved = dict(line.split(" ", 1) for line in output.splitlines() if " " in line)
    return user or resolved.get("user", "root"), port or int(resolved.get("port", "22"))
