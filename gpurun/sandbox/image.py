"""Build the sandbox base image once with debootstrap, and reuse it until its recipe changes."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from gpurun.errors import SandboxError
from gpurun.sandbox import recipe
from gpurun.sandbox.apt_sources import MIRROR_ENV, find_debian_mirror
from gpurun.sandbox.locks import file_lock
from gpurun.sandbox.mounts import unmount_all_under
from gpurun.sandbox.paths import ImageLayout, StateLayout, resolve_state_dir
from gpurun.sandbox.records import load_record

log = logging.getLogger("gpurun.sandbox")

BUILD_LOG_NAME = "base-build.log"
UNFINISHED_BUILD_PREFIX = ".building-"


def _stamp_matches(image: ImageLayout, digest: str) -> bool:
    try:
        stamp = json.loads(image.stamp.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return bool(stamp.get("recipe") == digest and image.rootfs.is_dir())


def is_base_current(state_dir: Path | None = None) -> bool:
    """Return True when a base image built from the current recipe is in place."""
    digest = recipe.recipe_digest()
    return _stamp_matches(resolve_state_dir(state_dir).image(digest), digest)


def ensure_base(state_dir: Path | None = None) -> Path:
    """Return the base image's root folder, building it first if it is missing or outdated.

    Each recipe gets its own image folder, so hosts that run on an older image keep it until
    they are removed. Concurrent callers take turns on a file lock: the first builds, and the
    others wait and reuse its image. A build goes to a temporary folder that is renamed into
    place only when it is complete.
    """
    state = resolve_state_dir(state_dir)
    digest = recipe.recipe_digest()
    image = state.image(digest)
    with file_lock(state.base_lock_file):
        if _stamp_matches(image, digest):
            return image.rootfs

        _remove_unfinished_builds(state)
        building = ImageLayout(state.images_dir / f"{UNFINISHED_BUILD_PREFIX}{os.getpid()}")
        try:
            _build(state, building, digest)
            _remove_tree(image.dir)
            building.dir.rename(image.dir)
        finally:
            _remove_tree(building.dir)
        _remove_unused_images(state, keep=image)
    return image.rootfs


def _remove_unfinished_builds(state: StateLayout) -> None:
    # Only a builder that died while holding the lock leaves these behind.
    for leftover in state.images_dir.glob(f"{UNFINISHED_BUILD_PREFIX}*"):
        log.warning("removing the unfinished base image build %s", leftover)
        _remove_tree(leftover)


def _remove_unused_images(state: StateLayout, keep: ImageLayout) -> None:
    # Hosts use an image as their overlay's lower layer, so it stays while one refers to it.
    in_use = set()
    if state.hosts_dir.is_dir():
        for record_file in state.hosts_dir.glob("*/host.json"):
            base_rootfs = load_record(record_file).base_rootfs
            if base_rootfs:
                in_use.add(Path(base_rootfs))

    for image_dir in state.images_dir.iterdir():
        if image_dir != keep.dir and ImageLayout(image_dir).rootfs not in in_use:
            log.info("removing the outdated base image %s", image_dir)
            _remove_tree(image_dir)


def _remove_tree(folder: Path) -> None:
    if not folder.exists():
        return
    unmount_all_under(folder, host=None)
    shutil.rmtree(folder)


def _build(state: StateLayout, building: ImageLayout, digest: str) -> None:
    building.rootfs.mkdir(parents=True)
    mirror = find_debian_mirror(recipe.SUITE, dict(os.environ))
    build_log = state.root / BUILD_LOG_NAME

    log.info("building the sandbox base image (debootstrap %s from %s)", recipe.SUITE, mirror)
    started = time.monotonic()
    _debootstrap(building.rootfs, mirror, build_log)
    _add_gpurun_files(building.rootfs)
    _remove_per_host_files(building.rootfs)

    stamp = {"recipe": digest, "suite": recipe.SUITE, "mirror": mirror}
    building.stamp.write_text(json.dumps(stamp, indent=2) + "\n")
    log.info("built the sandbox base image in %.0f s", time.monotonic() - started)


def _debootstrap(rootfs: Path, mirror: str, build_log: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise SandboxError(
            "debootstrap is missing on the control node, so the sandbox base image "
            "cannot be built. Install it with: apt-get install debootstrap"
        )

    argv = [
        "debootstrap",
        "--variant=minbase",
        "--components=main",
        f"--include={','.join(recipe.PACKAGES)}",
        recipe.SUITE,
        str(rootfs),
        mirror,
    ]
    with open(build_log, "w") as output:
        result = subprocess.run(argv, stdout=output, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = build_log.read_text(errors="replace").splitlines()[-15:]
        raise SandboxError(
            f"debootstrap failed with exit code {result.returncode} while building "
            f"the sandbox base image from {mirror}. Its log is {build_log}, ending with:\n  "
            + "\n  ".join(tail)
            + f"\nNext step: check that the mirror is reachable, or set another one in "
            f"{MIRROR_ENV}"
        )


def _write(rootfs: Path, relative_path: str, text: str, mode: int = 0o644) -> None:
    path = rootfs / relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _add_gpurun_files(rootfs: Path) -> None:
    _write(rootfs, recipe.SSHD_CONFIG_PATH, recipe.SSHD_CONFIG)
    _write(rootfs, recipe.CGROUP_REMOUNT_SCRIPT_PATH, recipe.CGROUP_REMOUNT_SCRIPT, 0o755)
    _write(rootfs, recipe.SSHD_ONLY_INIT_PATH, recipe.SSHD_ONLY_INIT, 0o755)
    _write(rootfs, recipe.CGROUP_REMOUNT_UNIT_PATH, recipe.CGROUP_REMOUNT_UNIT)

    # Enabling a unit means a symlink in the target's .wants folder, so systemctl is not needed.
    link = rootfs / recipe.CGROUP_REMOUNT_UNIT_LINK
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to("/" + recipe.CGROUP_REMOUNT_UNIT_PATH)


def _remove_per_host_files(rootfs: Path) -> None:
    for pattern in recipe.PER_HOST_FILES_TO_REMOVE:
        for path in rootfs.glob(pattern):
            path.unlink()

    # Each host gets its own machine-id in its upper layer, so the base has an empty one.
    (rootfs / "etc/machine-id").write_text("")

    # The hosts are offline, so the downloaded packages and indexes only take space.
    for cached in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        cached.unlink()
    shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
