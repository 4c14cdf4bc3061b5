"""Facts about systemd units on the host."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from gpurun.host import Host

UNIT_PROPERTIES = ["LoadState", "ActiveState", "UnitFileState", "FragmentPath", "DropInPaths"]


@dataclass(frozen=True)
class UnitFacts:
    name: str
    load_state: str
    active_state: str
    file_state: str
    fragment_path: str
    drop_in_paths: list[str]

    @property
    def exists(self) -> bool:
        return self.load_state == "loaded"

    @property
    def active(self) -> bool:
        return self.active_state == "active"

    @property
    def enabled(self) -> bool:
        return self.file_state == "enabled"


def parse_show(text: str) -> dict[str, str]:
    """Parse `systemctl show` output (KEY=value lines)."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value
    return values


def unit(host: Host, name: str) -> UnitFacts:
    result = host.run(["systemctl", "show", name, "-p", ",".join(UNIT_PROPERTIES)])
    values = parse_show(result.stdout)
    return UnitFacts(
        name=name,
        load_state=values.get("LoadState", ""),
        active_state=values.get("ActiveState", ""),
        file_state=values.get("UnitFileState", ""),
        fragment_path=values.get("FragmentPath", ""),
        drop_in_paths=values.get("DropInPaths", "").split(),
    )


def parse_exec_start(value: str) -> list[list[str]]:
    """Return the argv lists of an ExecStart property as `systemctl show` prints it.

    systemd prints each command as `{ path=... ; argv[]=ARG ARG ... ; ignore_errors=... }`.
    """
    commands = []
    for match in re.finditer(r"argv\[\]=(.*?) ; ignore_errors=", value):
        commands.append(shlex.split(match.group(1)))
    return commands


def exec_start(host: Host, name: str) -> list[list[str]]:
    """Return the effective ExecStart argv lists of a unit, after all drop-ins."""
    result = host.run(["systemctl", "show", name, "-p", "ExecStart", "--value"], check=False)
    return parse_exec_start(result.stdout) if result.ok else []


def environment_files(host: Host, name: str) -> list[str]:
    """Return the EnvironmentFile paths of a unit (a leading '-' marks optional files)."""
    result = host.run(["systemctl", "show", name, "-p", "EnvironmentFiles", "--value"],
                      check=False)
    paths = []
    for line in result.stdout.splitlines():
        path = line.split(" (")[0].strip()
        if path:
            paths.append(path)
    return paths
