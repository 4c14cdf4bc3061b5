"""Debian packages of this machine's apt sources: download into a cache, read and unpack them."""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gpurun.bundle.manifest import sha256_file
from gpurun.demo.tools import require_tool, run_tool
from gpurun.errors import BundleError

logger = logging.getLogger("gpurun.demo")

DEFAULT_CACHE_DIR = Path("/var/cache/gpurun/debs")

_APT_HINT = (
    "the demo builder needs a Debian or Ubuntu machine whose apt sources are reachable, so "
    "run `apt-get update`, or copy the .deb files into the cache folder"
)


@dataclass(frozen=True)
class AptDownload:
    """One line of `apt-get download --print-uris`: where apt would fetch a package."""

    name: str
    filename: str  # the file name apt-get download writes, epoch colon encoded as %3a
    size: int
    hash_type: str  # as apt prints it, e.g. SHA256
    hash_value: str


def fetch_debs(names: Sequence[str], cache_dir: Path) -> dict[str, Path]:
    """Download the candidate version of each package into `cache_dir`, unless already there.

    A cached file is reused when its size and hash match what apt's index lists. Returns the
    path of each package's .deb by package name.
    """
    require_tool("apt-get", hint=_APT_HINT)
    cache_dir.mkdir(parents=True, exist_ok=True)
    downloads = _planned_downloads(names)

    missing = [item for item in downloads if not _is_cached(cache_dir, item)]
    if missing:
        logger.info("downloading %s into %s", ", ".join(item.name for item in missing), cache_dir)
        # apt-get warns that the download is unsandboxed when _apt cannot write the folder.
        # That warning is harmless here.
        run_tool(["apt-get", "download", *(item.name for item in missing)],
                 cwd=cache_dir, hint=_APT_HINT)

    paths: dict[str, Path] = {}
    for item in downloads:
        if not _is_cached(cache_dir, item):
            raise BundleError(
                f"{cache_dir / item.filename} does not match apt's index after the download "
                f"(expected {item.size} bytes, {item.hash_type} {item.hash_value})"
                "\n  next step: delete it and build again"
            )
        paths[item.name] = cache_dir / item.filename
    return paths


def deb_field(deb: Path, field: str) -> str:
    """Return one control field of a .deb file, e.g. Version."""
    return run_tool(["dpkg-deb", "--field", str(deb), field],
                    hint=f"check that {deb} is a valid .deb file").strip()


def unpack_deb(deb: Path, dest: Path) -> Path:
    """Extract the files of a .deb (not its control scripts) under `dest` and return `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    run_tool(["dpkg-deb", "--extract", str(deb), str(dest)],
             hint=f"check that {deb} is a valid .deb file, or delete it to download it again")
    return dest


def upstream_release(debian_version: str) -> str:
    """Return the upstream release number of a Debian version: 20.10.24+dfsg1-1+b6 -> 20.10.24.

    The epoch, the Debian revision and a repack suffix such as +dfsg1 or +ds1 are dropped.
    """
    version = debian_version.split(":", 1)[-1]
    if "-" in version:
        version = version.rsplit("-", 1)[0]
    match = re.match(r"\d+(\.\d+)*", version)
    if match is None:
        raise BundleError(
            f"cannot read a release number from the Debian version {debian_version!r}, "
            "expected it to start with digits such as 20.10.24"
        )
    return match.group(0)


def _planned_downloads(names: Sequence[str]) -> list[AptDownload]:
    # apt-get leaves out packages whose file already exists in the working folder, so ask
    # from an empty one.
    with tempfile.TemporaryDirectory(prefix="gpurun-apt-") as empty_dir:
        output = run_tool(["apt-get", "download", "--print-uris", *names],
                          cwd=Path(empty_dir), hint=_APT_HINT)
    by_name: dict[str, AptDownload] = {}
    for line in output.splitlines():
        item = _parse_uri_line(line, names)
        if item is not None:
            by_name[item.name] = item

    missing = [name for name in names if name not in by_name]
    if missing:
        raise BundleError(
            f"apt-get download --print-uris listed no file for {', '.join(missing)}"
            f"\n  next step: {_APT_HINT}"
        )
    return [by_name[name] for name in names]


def _parse_uri_line(line: str, names: Sequence[str]) -> AptDownload | None:
    # Format: 'URI' FILENAME SIZE HASHTYPE:HASH
    fields = line.split()
    if len(fields) != 4 or ":" not in fields[3]:
        return None
    filename, size, hashed = fields[1], fields[2], fields[3]
    hash_type, hash_value = hashed.split(":", 1)
    for name in names:
        if filename.startswith(f"{name}_"):
            return AptDownload(name, filename, int(size), hash_type.upper(), hash_value.lower())
    return None


def _is_cached(cache_dir: Path, item: AptDownload) -> bool:
    path = cache_dir / item.filename
    if not path.is_file() or path.stat().st_size != item.size:
        return False
    if item.hash_type != "SHA256":
        # NOTE: only SHA256 is checked, so a source that lists only older hashes is trusted by size.
        return True
    return sha256_file(path) == item.hash_value
