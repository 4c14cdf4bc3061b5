"""Disposable local Debian hosts, booted with systemd-nspawn and reached over ssh.

gpurun's demo and integration tests install Docker and the NVIDIA packages on them.
"""

from __future__ import annotations

from gpurun.sandbox.hosts import SandboxHost, down, list_hosts, ssh_argv, up

__all__ = ["SandboxHost", "down", "list_hosts", "ssh_argv", "up"]
