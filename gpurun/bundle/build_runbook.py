"""The functions the bundle runbook's cells call: parameters, the build, its record and the check.

The bundle runbook runs on the connected machine that builds the bundle, not on a host. Its
executed notebook records the parameters, the resolved package set with the reason for each
package, and every file with its SHA-256.
"""

from __future__ import annotations

from pathlib import Path

from gpurun import display
from gpurun.bundle.build import BuildRequest, BuildResult
from gpurun.bundle.build_cli import check_with_key
from gpurun.bundle.manifest import require_valid_bundle
from gpurun.runbook import _configure_logging, _show_errors_briefly
from gpurun.step import show


def start(
    *,
    out_dir: str,
    docker_version: str,
    arch: str,
    toolkit_version: str,
    package_format: str,
    docker_mirror: str,
    nvidia_mirror: str,
    key_file: str,
    allow_unsigned: bool,
    rootless_extras: bool,
    docker_sha256: str,
    test_image: str,
) -> BuildRequest:
    """Set up logging in the notebook, show the parameters and return the build request.

    Empty strings stand for unset optional parameters, since papermill parameters are plain
    values.
    """
    _configure_logging()
    _show_errors_briefly()
    request = BuildRequest(
        out_dir=Path(out_dir), docker_version=docker_version, arch=arch,
        toolkit_version=toolkit_version, package_format=package_format,
        docker_mirror=docker_mirror, nvidia_mirror=nvidia_mirror,
        key_file=Path(key_file) if key_file else None, allow_unsigned=allow_unsigned,
        rootless_extras=rootless_extras, docker_sha256=docker_sha256 or None,
        test_image=Path(test_image) if test_image else None, progress=True,
    )
    show(display.facts_table("bundle parameters", {
        "output folder": out_dir, "Docker version": docker_version, "architecture": arch,
        "toolkit version": toolkit_version, "package format": package_format,
        "Docker mirror": docker_mirror, "NVIDIA mirror": nvidia_mirror,
        "repository key": key_file or ("none: unsigned build" if allow_unsigned else "none"),
        "rootless extras": rootless_extras, "pinned Docker SHA-256": docker_sha256 or "none",
        "test image": test_image or "none",
    }))
    return request


def show_result(result: BuildResult) -> None:
    """Show the resolved package set and every file of the bundle with its SHA-256."""
    resolution = result.resolution
    show(display.table(
        f"toolkit {resolution.toolkit.version}: {resolution.toolkit_set.name} set, "
        "in install order",
        ["package", "version", "why"],
        [(p.name, p.version, resolution.reasons[p.name]) for p in resolution.packages],
    ))
    show(display.facts_table("what the hosts must provide", {
        "relations no bundled package meets": ", ".join(resolution.host_requirements) or "none",
    }))
    manifest = result.manifest
    show(display.table(
        f"bundle files ({len(result.downloaded)} downloaded in this run, "
        f"{len(result.reused)} kept from an earlier run)",
        ["path", "kind", "version", "bytes", "SHA-256"],
        [(f.path, f.kind, f.version, f.size, f.sha256) for f in manifest.files],
    ))
    show(display.facts_table("sources", manifest.sources))


def verify(out_dir: str, key_file: str) -> None:
    """Check the finished bundle as `gpurun bundle verify --key` does on the offline side."""
    manifest = require_valid_bundle(Path(out_dir))
    if key_file:
        check_with_key(Path(out_dir), Path(key_file))
    show(display.facts_table("bundle check", {
        "files": f"all {len(manifest.files)} match the manifest",
        "signed index": (f"checked with {key_file or 'the bundled key'}"
                         if manifest.sources.get("signing_key_fingerprint")
                         else "none: unsigned build"),
    }))
