"""Facts about the NVIDIA Container Toolkit packages that the stand-in packages copy.

Source: the Packages index of NVIDIA's apt repository (stable/deb/<arch>/ on
nvidia.github.io/libnvidia-container), entries for version 1.17.2-1. tests/test_demo_bundle.py
compares these facts with that index. Dependency fields are templates: {version} is the full
package version (1.17.2-1) and {release} its part before the revision (1.17.2), so for
1.17.2-1 they render to the real fields.
"""

from __future__ import annotations

from dataclasses import dataclass

STANDIN_VERSION = "1.17.2-1"

# Dependencies first, so installing in this order never leaves a package unconfigured.
INSTALL_ORDER: tuple[str, ...] = (
    "libnvidia-container1",
    "libnvidia-container-tools",
    "nvidia-container-toolkit-base",
    "nvidia-container-toolkit",
)


@dataclass(frozen=True)
class ToolkitPackageFacts:
    """The control fields of one real toolkit package, and the programs its stand-in ships."""

    name: str
    section: str
    summary: str  # first line of the real Description
    depends: dict[str, str]  # Debian arch -> Depends template, "" when the package has none
    source: str | None = None
    multi_arch: str | None = None
    breaks: str | None = None
    replaces: str | None = None
    programs: tuple[str, ...] = ()  # names under /usr/bin


_OLD_RUNTIME_BREAKS = "nvidia-container-runtime (<= 3.5.0-1), nvidia-container-runtime-hook"

TOOLKIT_PACKAGES: dict[str, ToolkitPackageFacts] = {
    "libnvidia-container1": ToolkitPackageFacts(
        name="libnvidia-container1",
        section="libs",
        summary="NVIDIA container runtime library",
        source="libnvidia-container",
        multi_arch="same",
        depends={
            arch: "libc6 (>= 2.27), libcap2 (>= 1:2.10), libseccomp2 (>= 0.0.0~20120605)"
            for arch in ("amd64", "arm64")
        },
    ),
    "libnvidia-container-tools": ToolkitPackageFacts(
        name="libnvidia-container-tools",
        section="utils",
        summary="NVIDIA container runtime library (command-line tools)",
        source="libnvidia-container",
        depends={
            "amd64": "libc6 (>= 2.8), libcap2 (>= 1:2.10), libnvidia-container1 (>= {release})",
            "arm64": "libc6 (>= 2.17), libcap2 (>= 1:2.10), libnvidia-container1 (>= {release})",
        },
        programs=("nvidia-container-cli",),
    ),
    "nvidia-container-toolkit-base": ToolkitPackageFacts(
        name="nvidia-container-toolkit-base",
        section="utils",
        summary="NVIDIA Container Toolkit Base",
        source="nvidia-container-toolkit",
        depends={"amd64": "", "arm64": ""},
        breaks=f"{_OLD_RUNTIME_BREAKS}, nvidia-container-toolkit (<= 1.10.0-1)",
        replaces=_OLD_RUNTIME_BREAKS,
        programs=("nvidia-container-runtime", "nvidia-ctk"),
    ),
    "nvidia-container-toolkit": ToolkitPackageFacts(
        name="nvidia-container-toolkit",
        section="utils",
        summary="NVIDIA Container toolkit",
        depends={
            arch: (
                "nvidia-container-toolkit-base (= {version}), "
                "libnvidia-container-tools (>= {version}), libnvidia-container-tools (<< 2.0.0)"
            )
            for arch in ("amd64", "arm64")
        },
        breaks=_OLD_RUNTIME_BREAKS,
        replaces=_OLD_RUNTIME_BREAKS,
        programs=("nvidia-container-runtime-hook",),
    ),
}
