"""The one seam between gpurun and a host: run commands, read, upload and write files."""

from __future__ import annotations

from gpurun.host.connection import HostSpec, connect
from gpurun.host.host import CommandResult, Host

__all__ = ["CommandResult", "Host", "HostSpec", "connect"]
