"""CPU architecture names as `uname -m`, Debian, RPM and Docker's download site spell them.

A host reports `uname -m` (x86_64, aarch64). Debian packages use amd64 and arm64, RPM packages
and Docker's static tarball folders (download.docker.com/linux/static/stable/<dir>/) use the
`uname -m` spelling. gpurun stores the `uname -m` name as the canonical one.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from gpurun.errors import BundleError


@dataclass(frozen=True)
class ArchNames:
    """The names of one CPU architecture in each naming scheme gpurun meets."""

    uname: str
    deb: str
    rpm: str
    docker_static: str


SUPPORTED_ARCHES: tuple[ArchNames, ...] = (
    ArchNames(uname="x86_64", deb="amd64", rpm="x86_64", docker_static="x86_64"),
    ArchNames(uname="aarch64", deb="arm64", rpm="aarch64", docker_static="aarch64"),
)

# Every accepted spelling, lower case, mapped to its architecture. "x86-64" is how `file` and
# some vendors write it, and macOS `uname -m` prints arm64.
_BY_ALIAS: dict[str, ArchNames] = {
    "x86_64": SUPPORTED_ARCHES[0],
    "amd64": SUPPORTED_ARCHES[0],
    "x86-64": SUPPORTED_ARCHES[0],
    "aarch64": SUPPORTED_ARCHES[1],
    "arm64": SUPPORTED_ARCHES[1],
}


def arch_names(name: str) -> ArchNames:
    """Look up an architecture by any accepted spelling, ignoring case and surrounding spaces.

    Raises BundleError naming the value and the supported names.
    """
    key = name.strip().lower()
    if key in _BY_ALIAS:
        return _BY_ALIAS[key]

    supported = ", ".join(sorted(_BY_ALIAS))
    raise BundleError(
        f"unsupported CPU architecture {name!r}: gpurun supports {supported}"
        f"\n  next step: check the host's `uname -m` or the arch you passed"
    )


def normalize_arch(name: str) -> str:
    """Return the `uname -m` name (x86_64, aarch64) for any accepted spelling."""
    return arch_names(name).uname


def deb_arch(name: str) -> str:
    """Return the Debian architecture name (amd64, arm64) for any accepted spelling."""
    return arch_names(name).deb


def rpm_arch(name: str) -> str:
    """Return the RPM architecture name (x86_64, aarch64) for any accepted spelling."""
    return arch_names(name).rpm


def docker_static_arch(name: str) -> str:
    """Return the folder name of Docker's static tarballs (x86_64, aarch64) for any spelling."""
    return arch_names(name).docker_static


def local_arch() -> str:
    """Return the canonical name of this machine's CPU architecture."""
    return normalize_arch(platform.machine())
