"""The record each sandbox host keeps in its folder: what was made for it, so it can be undone."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from gpurun.errors import SandboxError


@dataclass(frozen=True)
class HostRecord:
    """One sandbox host as stored in hosts/NAME/host.json."""

    name: str
    index: int
    address: str
    init: str
    pid: int | None = None
    inventory_file: str | None = None
    # The base image under the host's overlay root, or "" if unknown.
    base_rootfs: str = ""
    # The package tool the host installs packages with: "dpkg", or "rpm" for a stand-in of an
    # RPM distribution.
    package_tool: str = "dpkg"

    def with_pid(self, pid: int | None) -> HostRecord:
        return replace(self, pid=pid)


def save_record(path: Path, record: HostRecord) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(asdict(record), indent=2) + "\n")
    partial.replace(path)


def load_record(path: Path) -> HostRecord:
    try:
        fields = json.loads(path.read_text())
        return HostRecord(**fields)
    except (OSError, ValueError, TypeError) as error:
        raise SandboxError(
            f"cannot read the sandbox host record {path}: {error}. "
            f"Remove the host with 'gpurun sandbox down {path.parent.name}'"
        ) from error
