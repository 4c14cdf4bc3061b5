"""A record, on the control node, of bundles whose files matched their manifest.

Each entry stores the SHA-256 of manifest.json and, for each listed file, its size, mtime,
ctime and inode when the file last matched. A bundle counts as verified while all of these are
unchanged. The file is written atomically; parallel runs may overwrite each other's entries,
which only costs a second hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import tempfile
from pathlib import Path

from gpurun.bundle.manifest import Manifest, manifest_path

log = logging.getLogger("gpurun.bundle")

CACHE_DIR_ENV = "GPURUN_CACHE_DIR"
CACHE_NAME = "verified-bundles.json"


def cache_file() -> Path:
    """Return the cache file: $GPURUN_CACHE_DIR, else $XDG_CACHE_HOME/gpurun or ~/.cache/gpurun."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured) / CACHE_NAME
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gpurun" / CACHE_NAME


def is_verified(bundle_dir: Path, manifest: Manifest) -> bool:
    """Return whether every file of the bundle is unchanged since it last matched the manifest."""
    entry = _load().get(_key(bundle_dir))
    if not entry or entry.get("manifest_sha256") != _manifest_sha256(bundle_dir):
        return False
    stats = _file_stats(bundle_dir, manifest)
    return stats is not None and entry.get("files") == stats


def remember_verified(bundle_dir: Path, manifest: Manifest) -> None:
    """Record that every file of the bundle matched the manifest just now."""
    stats = _file_stats(bundle_dir, manifest)
    if stats is None:
        return
    entries = _load()
    entries[_key(bundle_dir)] = {"manifest_sha256": _manifest_sha256(bundle_dir), "files": stats}
    write_cache(cache_file(), entries)


def write_cache(path: Path, entries: dict[str, object]) -> None:
    """Write a cache file atomically; log a warning instead of failing when it cannot."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-")
        with os.fdopen(descriptor, "w") as stream:
            json.dump(entries, stream, indent=1, sort_keys=True)
        os.replace(temporary, path)
    except OSError as error:  # a read-only home only costs hashing again next time
        log.warning("cannot write the cache file %s: %s", path, error)


def _key(bundle_dir: Path) -> str:
    return str(Path(bundle_dir).resolve())


def _manifest_sha256(bundle_dir: Path) -> str:
    return hashlib.sha256(manifest_path(bundle_dir).read_bytes()).hexdigest()


def _file_stats(bundle_dir: Path, manifest: Manifest) -> dict[str, list[int]] | None:
    """Return [size, mtime_ns, ctime_ns, inode] per listed file; None if one is not a file.

    lstat, so that a file replaced by a symbolic link never counts as unchanged.
    """
    root = Path(bundle_dir).resolve()
    stats = {}
    for entry in manifest.files:
        try:
            found = os.lstat(root / entry.path)
        except OSError:
            return None
        if not stat.S_ISREG(found.st_mode):
            return None
        stats[entry.path] = [found.st_size, found.st_mtime_ns, found.st_ctime_ns, found.st_ino]
    return stats


def _load() -> dict[str, dict]:
    try:
        data = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
