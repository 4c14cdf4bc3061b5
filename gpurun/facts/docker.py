"""Facts about Docker on the host: binaries, packages, the daemon and what it reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gpurun.facts.packages import has_rpm_database
from gpurun.host import Host

# The files of Docker's static tarball, in the order they are installed.
DOCKER_BINARIES = [
    "containerd", "containerd-shim-runc-v2", "ctr", "runc",
    "docker-init", "docker-proxy", "dockerd", "docker",
]

DOCKER_PACKAGES = ["docker.io", "docker-ce", "docker-ee", "moby-engine", "podman-docker"]


@dataclass(frozen=True)
class BinaryFacts:
    path: str
    sha256: str | None  # of the file a symbolic link points to
    mode: str | None
    owner: str | None
    link_target: str | None = None  # set when path is a symbolic link (packages install some)


def binary(host: Host, path: str) -> BinaryFacts:
    """Return the checksum, mode and owner of a file, or Nones when it is absent."""
    result = host.run(["stat", "-c", "%a %u:%g %F", "--", path], check=False)
    if not result.ok:
        return BinaryFacts(path, None, None, None)
    mode, owner, kind = result.stdout.strip().split(" ", 2)
    target = None
    if kind == "symbolic link":
        target = host.run(["readlink", "--", path], check=False).stdout.strip() or "?"
    return BinaryFacts(path, host.sha256(path), mode.rjust(4, "0"), owner, target)


def installed_binaries(host: Host, bin_dir: str) -> dict[str, BinaryFacts]:
    return {name: binary(host, f"{bin_dir}/{name}") for name in DOCKER_BINARIES}


def packaged_docker(host: Host) -> dict[str, str]:
    """Return Docker packages installed through dpkg or rpm, with their versions."""
    found = {}
    if host.which("dpkg-query"):
        fmt = "${Package}\t${Version}\t${db:Status-Status}\n"
        result = host.run(["dpkg-query", "-W", "-f", fmt, *DOCKER_PACKAGES], check=False)
        for line in result.stdout.splitlines():
            name, version, status = (line.split("\t") + ["", ""])[:3]
            if status == "installed":
                found[name] = version
    if has_rpm_database(host):
        for name in ["docker-ce", "docker", "moby-engine", "podman-docker"]:
            result = host.run(["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", name], check=False)
            if result.ok:
                found[name] = result.stdout.strip()
    return found


def dockerd_pids(host: Host) -> list[int]:
    result = host.run(["pidof", "dockerd"], check=False)
    return [int(pid) for pid in result.stdout.split()]


def docker_info(host: Host) -> dict[str, Any] | None:
    """Return `docker info` as a mapping, or None when no daemon responds."""
    if host.which("docker") is None:
        return None
    result = host.run(["docker", "info", "--format", "{{json .}}"], check=False, timeout=60)
    if not result.ok:
        return None
    try:
        info: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        return None
    # The 20.10 client exits 0 without a daemon and reports it only under ServerErrors.
    if info.get("ServerErrors") or not info.get("ServerVersion"):
        return None
    return info


def server_version(host: Host) -> str | None:
    result = host.run(["docker", "version", "--format", "{{.Server.Version}}"], check=False)
    return result.stdout.strip() if result.ok and result.stdout.strip() else None
