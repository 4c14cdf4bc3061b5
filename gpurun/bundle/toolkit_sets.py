"""The NVIDIA Container Toolkit packages that a host with Docker's static binaries needs, by version.

Source: the release notes of the NVIDIA Container Toolkit (NVIDIA/cloud-native-docs,
container-toolkit/release-notes.md) and the Packages index of NVIDIA's apt repository:
- 1.6.0 moved the nvidia-container-runtime executable into nvidia-container-toolkit; from then
  on the nvidia-container-runtime package (3.6.0 and later) is an empty meta-package. Before
  1.6.0 that package carried the runtime executable, so a host needs it.
- 1.6.0 also released libnvidia-container1, libnvidia-container-tools and
  nvidia-container-toolkit under one version number.
- 1.11.0 introduced nvidia-container-toolkit-base (nvidia-ctk and the runtime executable).
- nvidia-docker2 before 2.14.0 depends on a packaged Docker (docker-ce, docker-ee, docker.io or
  moby-engine) and installs its own /etc/docker/daemon.json; 2.14.0 is an empty meta-package.
  1.14.0 was the last release with nvidia-docker2 and nvidia-container-runtime.
A static Docker needs no package of Docker's, and gpurun merges the runtime into daemon.json
itself, so nvidia-docker2 is never part of a bundle.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpurun.bundle.versions import compare, upstream_of

TOOLKIT = "nvidia-container-toolkit"

# Packages that a static-Docker host must never get, with the reason shown when a dependency
# pulls one in.
EXCLUDED_PACKAGES: dict[str, str] = {
    "nvidia-docker2": (
        "it depends on a packaged Docker and installs its own /etc/docker/daemon.json before "
        "2.14.0, and is an empty meta-package from 2.14.0 on; gpurun registers the runtime "
        "in daemon.json itself"
    ),
}

# Package names of a packaged Docker. A dependency on one of them cannot be met on a host that
# runs Docker's static binaries.
PACKAGED_DOCKER = frozenset({
    "docker-ce", "docker-ee", "docker.io", "docker-engine", "moby-engine", "docker",
})


@dataclass(frozen=True)
class ToolkitSet:
    """The packages to bundle for toolkit versions from `since` up to the next set."""

    name: str
    since: str  # upstream version, inclusive
    packages: tuple[str, ...]  # the packages a static-Docker host needs, dependencies first
    # Packages released under the toolkit's own upstream version, so a bundle must contain them
    # all at that version.
    same_version: tuple[str, ...]
    note: str


TOOLKIT_SETS: tuple[ToolkitSet, ...] = (
    ToolkitSet(
        name="modern (toolkit-base)",
        since="1.11.0",
        packages=("libnvidia-container1", "libnvidia-container-tools",
                  "nvidia-container-toolkit-base", "nvidia-container-toolkit"),
        same_version=("libnvidia-container1", "libnvidia-container-tools",
                      "nvidia-container-toolkit-base", "nvidia-container-toolkit"),
        note="nvidia-container-runtime and nvidia-docker2 are meta-packages a host does not need",
    ),
    ToolkitSet(
        name="unified (runtime inside the toolkit)",
        since="1.6.0",
        packages=("libnvidia-container1", "libnvidia-container-tools",
                  "nvidia-container-toolkit"),
        same_version=("libnvidia-container1", "libnvidia-container-tools",
                      "nvidia-container-toolkit"),
        note="nvidia-container-runtime is a meta-package from 3.6.0 on; nvidia-docker2 is left out",
    ),
    ToolkitSet(
        name="legacy (separate nvidia-container-runtime)",
        since="0",
        packages=("libnvidia-container1", "libnvidia-container-tools",
                  "nvidia-container-toolkit", "nvidia-container-runtime"),
        # NOTE: before 1.6.0 the library and the toolkit had separate version numbers, so only
        # the dependency ranges of the index tie these packages together.
        same_version=("nvidia-container-toolkit",),
        note="nvidia-container-runtime carries the runtime executable; nvidia-docker2 is left out",
    ),
)


def toolkit_set_for(package_format: str, toolkit_version: str) -> ToolkitSet:
    """Return the package set for a toolkit package version (1.17.2-1, 1.5.1-1, ...)."""
    upstream = upstream_of(toolkit_version)
    for toolkit_set in TOOLKIT_SETS:
        if compare(package_format, upstream, toolkit_set.since) >= 0:
            return toolkit_set
    return TOOLKIT_SETS[-1]
