"""Checks shared by several steps."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from gpurun import bundle_cache
from gpurun.bundle.archs import normalize_arch
from gpurun.bundle.manifest import Manifest, load_manifest, require_valid_bundle
from gpurun.errors import BundleError, GpurunError
from gpurun.host import Host
from gpurun.plan import Action

log = logging.getLogger("gpurun.steps")

# Paths that go unquoted into unit files must be plain absolute paths.
PLAIN_PATH = re.compile(r"^/[A-Za-z0-9._/-]+$")


def checked_bin_dir(bin_dir: str) -> str:
    """Return bin_dir without a trailing slash; reject one that cannot go into a unit unquoted."""
    if not PLAIN_PATH.match(bin_dir) or ".." in bin_dir.split("/"):
        raise GpurunError(
            f"invalid bin_dir {bin_dir!r}: use an absolute path of letters, digits, '.', '_', "
            f"'-' and '/', such as /usr/bin, because systemd units name it unquoted"
        )
    return bin_dir.rstrip("/") or "/"


def open_bundle(bundle_dir: str) -> Manifest:
    """Load the bundle's manifest after checking every file against it (size and SHA-256).

    Every step opens the bundle, and hashing it takes seconds. So a bundle whose files all
    have the same size, mtime, ctime and inode as when they last matched the manifest on this
    control node is not hashed again (see gpurun.bundle_cache). Any write to a file changes
    its ctime, which a user cannot set back, so a changed file is always hashed again.
    """
    folder = Path(bundle_dir)
    manifest = load_manifest(folder)
    if bundle_cache.is_verified(folder, manifest):
        log.info("bundle %s: all %d files unchanged since they matched the manifest",
                 bundle_dir, len(manifest.files))
        return manifest
    manifest = require_valid_bundle(folder)
    bundle_cache.remember_verified(folder, manifest)
    log.info("bundle %s: all %d files match the manifest (SHA-256 computed now)",
             bundle_dir, len(manifest.files))
    return manifest


def require_matching_arch(host: Host, host_arch: str, manifest: Manifest) -> None:
    """Refuse a bundle built for another CPU architecture before anything is uploaded."""
    host_name = normalize_arch(host_arch)
    bundle_name = normalize_arch(manifest.arch)
    if host_name != bundle_name:
        raise BundleError(
            f"the bundle is for {bundle_name} but host {host.name} is {host_arch} "
            f"(`uname -m`)\n  next step: build a bundle for {host_name} and run again; "
            f"nothing was changed on the host"
        )


def planned_after_earlier_steps(target: str, change: str, missing: list[str]) -> Action:
    """Return the action a plan-only run shows for a change that needs programs not there yet.

    In a plan of a whole run on a bare host, earlier steps have not installed `missing`, so
    the change cannot be computed and checked in full. The real run does that after them.
    """
    reason = (f"{', '.join(missing)} not installed yet; an earlier step of this run installs "
              f"it, and the real run checks this change after that step")

    def apply() -> None:
        raise GpurunError(f"{target}: {change} was planned without {', '.join(missing)}, so it "
                          f"cannot be applied\n  next step: run the earlier steps first")

    return Action(target, change, reason, apply)
