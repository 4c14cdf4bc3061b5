"""Find and remove the mounts under a sandbox folder on the control node."""

from __future__ import annotations

import os
from pathlib import Path

from gpurun.sandbox.commands import run_checked


def _decode_mount_path(field: str) -> str:
    # /proc/self/mountinfo writes space, tab, newline and backslash as octal escapes.
    for escaped, plain in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, plain)
    return field


def mounts_under(folder: Path) -> list[Path]:
    """Return the mount points at or below `folder`, deepest first."""
    prefix = os.path.realpath(folder)
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            mount_point = _decode_mount_path(line.split()[4])
            if mount_point == prefix or mount_point.startswith(prefix + "/"):
                found.append(Path(mount_point))
    return sorted(found, key=lambda path: len(path.parts), reverse=True)


def unmount_all_under(folder: Path, *, host: str | None) -> None:
    """Unmount every mount at or below `folder`, deepest first and stacked mounts one by one."""
    while remaining := mounts_under(folder):
        run_checked(
            ["umount", str(remaining[0])],
            host=host,
            next_step=f"find what still uses it with: fuser -vm {remaining[0]}",
        )
