"""The offline bundle: its manifest, checks, and the CPU architecture names it uses."""

from __future__ import annotations

from gpurun.bundle.archs import (
    SUPPORTED_ARCHES,
    ArchNames,
    arch_names,
    deb_arch,
    docker_static_arch,
    local_arch,
    normalize_arch,
    rpm_arch,
)
from gpurun.bundle.manifest import (
    FORMAT_VERSION,
    KIND_DOCKER_STATIC,
    KIND_TEST_IMAGE,
    KIND_TOOLKIT_INDEX,
    KIND_TOOLKIT_PACKAGE,
    MANIFEST_NAME,
    BundleFile,
    Manifest,
    load_manifest,
    manifest_from_json,
    require_valid_bundle,
    sha256_file,
    verify_bundle,
    write_manifest,
)

__all__ = [
    "FORMAT_VERSION",
    "KIND_DOCKER_STATIC",
    "KIND_TEST_IMAGE",
    "KIND_TOOLKIT_INDEX",
    "KIND_TOOLKIT_PACKAGE",
    "MANIFEST_NAME",
    "SUPPORTED_ARCHES",
    "ArchNames",
    "BundleFile",
    "Manifest",
    "arch_names",
    "deb_arch",
    "docker_static_arch",
    "load_manifest",
    "local_arch",
    "manifest_from_json",
    "normalize_arch",
    "require_valid_bundle",
    "rpm_arch",
    "sha256_file",
    "verify_bundle",
    "write_manifest",
]
