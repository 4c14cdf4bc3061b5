"""Put bundle files on a host, once: a file already there with the right checksum stays."""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

from gpurun.errors import BundleError
from gpurun.host import Host

log = logging.getLogger("gpurun.operations")

# Bundle files live here on every host, outside any run, so a re-run uploads nothing.
HOST_BUNDLE_DIR = PurePosixPath("/var/lib/gpurun/bundle")


def host_path(relative: str) -> PurePosixPath:
    return HOST_BUNDLE_DIR / relative


def ensure_uploaded(host: Host, bundle_dir: Path, relative: str, sha256: str) -> PurePosixPath:
    """Upload a bundle file unless the host has it with the right SHA-256; verify it either way."""
    remote = host_path(relative)
    if host.sha256(remote) == sha256:
        log.info("%s: %s already on the host with the manifest's SHA-256, not uploaded",
                 host.name, remote)
        return remote
    size = (bundle_dir / relative).stat().st_size
    log.info("%s: uploading %s (%d bytes) to %s", host.name, relative, size, remote)
    host.upload(bundle_dir / relative, remote)
    found = host.sha256(remote)
    if found != sha256:
        raise BundleError(
            f"{relative} on host {host.name} has SHA-256 {found} after upload, the manifest "
            f"says {sha256}\n  next step: check the disk on the host and the bundle with "
            f"`gpurun bundle verify {bundle_dir}`, then run the step again"
        )
    return remote
