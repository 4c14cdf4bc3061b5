"""Reading, writing and checking `manifest.json`, the manifest at the root of a bundle folder.

The data classes live in gpurun.bundle.model and the JSON parsing in gpurun.bundle.manifest_json.
This module re-exports them, so callers import everything about manifests from here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from gpurun.bundle.manifest_json import is_inside_bundle, manifest_from_json
from gpurun.bundle.model import (
    FORMAT_VERSION,
    KIND_DOCKER_STATIC,
    KIND_TEST_IMAGE,
    KIND_TOOLKIT_INDEX,
    KIND_TOOLKIT_PACKAGE,
    MANIFEST_NAME,
    PACKAGE_FORMATS,
    REBUILD_HINT,
    BundleFile,
    Manifest,
)
from gpurun.errors import BundleError

__all__ = [
    "FORMAT_VERSION",
    "KIND_DOCKER_STATIC",
    "KIND_TEST_IMAGE",
    "KIND_TOOLKIT_INDEX",
    "KIND_TOOLKIT_PACKAGE",
    "MANIFEST_NAME",
    "PACKAGE_FORMATS",
    "REBUILD_HINT",
    "BundleFile",
    "Manifest",
    "is_inside_bundle",
    "load_manifest",
    "manifest_from_json",
    "manifest_path",
    "require_valid_bundle",
    "sha256_file",
    "verify_bundle",
    "write_manifest",
]

logger = logging.getLogger("gpurun.bundle")

_CHUNK_SIZE = 1024 * 1024


def manifest_path(bundle_dir: Path) -> Path:
    return Path(bundle_dir) / MANIFEST_NAME


def load_manifest(bundle_dir: Path) -> Manifest:
    """Read and validate `manifest.json` of a bundle folder.

    Raises BundleError naming the file and the offending key or value. The causes are a missing
    folder or file, invalid JSON (reported with line and column), an unknown format version, a
    missing key or one of the wrong type, a file path that leaves the bundle, and a toolkit
    install order that does not match the listed packages.
    """
    path = manifest_path(bundle_dir)
    if not Path(bundle_dir).is_dir():
        raise BundleError(f"bundle folder {bundle_dir} not found\n  next step: {REBUILD_HINT}")
    if not path.is_file():
        raise BundleError(
            f"{path} not found, so {bundle_dir} is not a gpurun bundle or its copy is "
            f"incomplete\n  next step: {REBUILD_HINT}"
        )

    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise BundleError(
            f"{path} is not UTF-8 text (invalid byte at offset {error.start})"
            f"\n  next step: {REBUILD_HINT}"
        ) from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise BundleError(
            f"{path} is not valid JSON: {error.msg} at line {error.lineno}, "
            f"column {error.colno}\n  next step: {REBUILD_HINT}"
        ) from error

    return manifest_from_json(data, source=path)


def write_manifest(bundle_dir: Path, manifest: Manifest) -> Path:
    """Write `manifest.json` atomically: a temporary file in the folder, then os.replace.

    The manifest is validated first, so a file that load_manifest would reject is never written.
    Returns the path written.
    """
    path = manifest_path(bundle_dir)
    data = manifest.to_json()
    manifest_from_json(data, source=path)
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    descriptor, temp_name = tempfile.mkstemp(dir=bundle_dir, prefix=".manifest.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


def sha256_file(path: Path) -> str:
    """Return the SHA-256 of a file as hex, reading it in chunks so large files fit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def verify_bundle(bundle_dir: Path) -> list[str]:
    """Return one line per problem found, or an empty list when every listed file matches.

    For a bundle with a signed repository index, the signature and the digests it vouches for
    are checked too (gpurun.bundle.index_chain). Files that the manifest does not list are
    allowed. Raises BundleError when the manifest
    itself is missing or invalid.
    """
    manifest = load_manifest(bundle_dir)
    root = Path(bundle_dir).resolve()
    problems: list[str] = []
    for entry in manifest.files:
        problem = _check_file(root, entry)
        if problem:
            problems.append(f"{entry.path}: {problem}")
    if not problems:
        # Imported here because the chain check builds on this module's neighbours.
        from gpurun.bundle.index_chain import check_index_chain

        problems += check_index_chain(root, manifest)
    logger.debug("verified %d files of bundle %s: %d problems",
                 len(manifest.files), bundle_dir, len(problems))
    return problems


def require_valid_bundle(bundle_dir: Path) -> Manifest:
    """Return the manifest of a bundle whose files all match it.

    Raises BundleError listing every problem and the next step otherwise.
    """
    manifest = load_manifest(bundle_dir)
    problems = verify_bundle(bundle_dir)
    if not problems:
        return manifest

    listing = "\n".join(f"  - {problem}" for problem in problems)
    raise BundleError(
        f"bundle {bundle_dir} (built by {manifest.builder}) does not match its manifest, "
        f"{len(problems)} problem(s):\n{listing}\n"
        f"  next step: {REBUILD_HINT}, then run `gpurun bundle verify {bundle_dir}`"
    )


def _check_file(root: Path, entry: BundleFile) -> str | None:
    """Return the problem with one listed file, or None when size and SHA-256 match."""
    path = root / entry.path
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        return f"resolves to {resolved}, outside the bundle folder (through a symbolic link)"
    if not path.exists():
        return "missing"
    if not path.is_file():
        return "is not a regular file"

    size = path.stat().st_size
    if size != entry.size:
        return f"size is {size} bytes, the manifest lists {entry.size}"

    digest = sha256_file(path)
    if digest != entry.sha256:
        return f"SHA-256 is {digest}, the manifest lists {entry.sha256}"
    return None
