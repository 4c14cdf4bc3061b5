"""SHA-256 of files on hosts, remembered on the control node with each file's stat signature.

The signature is size, inode, mtime and ctime to the nanosecond (`stat -c '%s %i %.9Y %.9Z'`).
Writing a file changes its ctime, which no user can set back short of changing the host's
clock, and replacing a file changes its inode. So a file whose signature is unchanged still has
the content that was hashed, and hashing it again (a second for dockerd on a busy host, and a
run reads each binary several times) is skipped.

One JSON file per login (user, address, port) under the cache folder of gpurun.bundle_cache.
Writes are atomic; parallel runs to one host may drop each other's entries, which only costs a
hash next time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from gpurun.bundle_cache import cache_file, write_cache

STAT_FORMAT = "%s %i %.9Y %.9Z"

# path -> (signature, sha256) for each login, loaded once per process.
_loaded: dict[str, dict[str, list[str]]] = {}


def lookup(login: str, path: str, signature: str) -> str | None:
    """Return the remembered SHA-256 of path, if its signature is still the same."""
    entry = _entries(login).get(path)
    if entry and entry[0] == signature:
        return entry[1]
    return None


def remember(login: str, path: str, signature: str, sha256: str) -> None:
    """Remember path's SHA-256 with its signature, in memory and in the login's cache file."""
    entries = _entries(login)
    entries[path] = [signature, sha256]
    write_cache(_file(login), entries)


def _entries(login: str) -> dict[str, list[str]]:
    if login not in _loaded:
        try:
            data = json.loads(_file(login).read_text())
        except (OSError, ValueError):
            data = {}
        _loaded[login] = data if isinstance(data, dict) else {}
    return _loaded[login]


def _file(login: str) -> Path:
    name = hashlib.sha256(login.encode()).hexdigest()[:24]
    return cache_file().parent / "host-hashes" / f"{name}.json"
