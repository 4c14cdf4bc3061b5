"""Downloading NVIDIA's toolkit packages into a bundle: index, signature, resolution, packages.

Each digest is trusted before it is used. The signature of InRelease (or repomd.xml) is
checked with the vendor's key first. The index is then checked against the digest that the
signed file lists, and each package against the digest that the index lists. The bundle keeps
the repository's layout below toolkit/<format>/, so the chain can be checked again offline
(gpurun.bundle.index_chain).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gpurun.bundle.apt_repo import parse_packages, parse_release_entries
from gpurun.bundle.archs import deb_arch, rpm_arch
from gpurun.bundle.download import Downloader, Expected
from gpurun.bundle.model import (
    KIND_INDEX_SIGNATURE,
    KIND_SIGNED_INDEX,
    KIND_SIGNING_KEY,
    KIND_TOOLKIT_INDEX,
    KIND_TOOLKIT_PACKAGE,
)
from gpurun.bundle.repo_model import RepoIndex
from gpurun.bundle.resolve import Resolution, resolve_toolkit
from gpurun.bundle.rpm_repo import parse_primary, parse_repomd
from gpurun.bundle.signatures import Signature, verify_cleartext, verify_detached
from gpurun.bundle.sources import join_url, nvidia_repo_url
from gpurun.errors import BundleError

logger = logging.getLogger("gpurun.bundle")

KEY_PATH = "keys/repository-key"


@dataclass(frozen=True)
class FetchedFile:
    """A file now in the bundle, with what the manifest records about it."""

    path: Path
    kind: str
    name: str
    version: str
    arch: str


@dataclass(frozen=True)
class ToolkitFetch:
    """The outcome of fetching the toolkit side of a bundle."""

    resolution: Resolution
    files: list[FetchedFile]
    repository_url: str
    key_fingerprint: str | None  # None for an unsigned build


def fetch_toolkit(
    downloader: Downloader,
    bundle_dir: Path,
    *,
    nvidia_mirror: str,
    package_format: str,
    arch: str,
    toolkit_version: str,
    key_file: Path | None,
    allow_unsigned: bool,
) -> ToolkitFetch:
    """Fetch the index, check it, resolve `toolkit_version` and fetch its packages.

    Without `key_file` the build refuses to go on unless `allow_unsigned` is set, because then
    nothing ties the index's digests to the vendor.
    """
    if key_file is None and not allow_unsigned:
        raise BundleError(
            "no repository key given, so the index's checksums could not be trusted"
            "\n  next step: pass the vendor's public key file (NVIDIA publishes it as "
            "<nvidia mirror>/gpgkey), or allow an unsigned repository explicitly"
        )
    repo_url = nvidia_repo_url(nvidia_mirror, package_format, arch)
    folder = bundle_dir / "toolkit" / package_format
    files: list[FetchedFile] = []

    if key_file is not None:
        key_copy = bundle_dir / KEY_PATH
        key_copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(key_file, key_copy)
        files.append(FetchedFile(key_copy, KIND_SIGNING_KEY, "repository-key", "-", "all"))

    if package_format == "deb":
        index, fingerprint = _fetch_apt_index(downloader, repo_url, folder, arch, key_file, files)
    else:
        index, fingerprint = _fetch_yum_index(downloader, repo_url, folder, arch, key_file, files)

    resolution = resolve_toolkit(index, toolkit_version)
    logger.info("toolkit %s: %s (%s set); the host must provide %s",
                resolution.toolkit.version, ", ".join(resolution.install_order),
                resolution.toolkit_set.name, ", ".join(resolution.host_requirements) or "nothing")
    for package in resolution.packages:
        target = folder / PurePosixPath(package.location)
        algorithm = "sha256" if "sha256" in package.checksums else "sha512"
        expected = Expected(package.size, algorithm, package.checksums[algorithm])
        downloader.fetch(join_url(repo_url, package.location), target, expected)
        files.append(FetchedFile(target, KIND_TOOLKIT_PACKAGE, package.name, package.version,
                                 package.arch))
    return ToolkitFetch(resolution, files, repo_url, fingerprint)


def _fetch_apt_index(
    downloader: Downloader,
    repo_url: str,
    folder: Path,
    arch: str,
    key_file: Path | None,
    files: list[FetchedFile],
) -> tuple[RepoIndex, str | None]:
    debian_arch = deb_arch(arch)
    packages_path = folder / "Packages"
    folder.mkdir(parents=True, exist_ok=True)
    if key_file is None:
        logger.warning("using the unsigned index %s/Packages: its checksums are trusted as "
                       "they are", repo_url)
        _fetch_fresh(downloader, f"{repo_url}/Packages", packages_path, Expected())
        fingerprint = None
    else:
        in_release = folder / "InRelease"
        in_release.write_bytes(downloader.fetch_bytes(f"{repo_url}/InRelease"))
        signature = verify_cleartext(in_release, key_file)
        entries = parse_release_entries(signature.signed_text.decode("utf-8"),
                                        source=f"{repo_url}/InRelease")
        entry = entries.get("Packages")
        if entry is None:
            raise BundleError(f"{repo_url}/InRelease does not list an uncompressed Packages "
                              "file\n  next step: check that the mirror is a flat apt repository")
        algorithm = "sha256" if "sha256" in entry.checksums else "sha512"
        _fetch_fresh(downloader, f"{repo_url}/Packages", packages_path,
                     Expected(entry.size, algorithm, entry.checksums[algorithm]))
        files.append(FetchedFile(in_release, KIND_SIGNED_INDEX, "InRelease", "-", debian_arch))
        fingerprint = signature.fingerprint

    files.append(FetchedFile(packages_path, KIND_TOOLKIT_INDEX, "Packages", "-", debian_arch))
    index = parse_packages(packages_path.read_text(encoding="utf-8"),
                           source=f"{repo_url}/Packages", arch=debian_arch)
    return index, fingerprint


def _fetch_yum_index(
    downloader: Downloader,
    repo_url: str,
    folder: Path,
    arch: str,
    key_file: Path | None,
    files: list[FetchedFile],
) -> tuple[RepoIndex, str | None]:
    target_arch = rpm_arch(arch)
    repodata = folder / "repodata"
    repodata.mkdir(parents=True, exist_ok=True)
    repomd_path = repodata / "repomd.xml"
    repomd_path.write_bytes(downloader.fetch_bytes(f"{repo_url}/repodata/repomd.xml"))
    files.append(FetchedFile(repomd_path, KIND_SIGNED_INDEX if key_file else KIND_TOOLKIT_INDEX,
                             "repomd.xml", "-", target_arch))

    fingerprint = None
    if key_file is None:
        logger.warning("using the unsigned index %s/repodata/repomd.xml: its checksums are "
                       "trusted as they are", repo_url)
    else:
        signature_path = repodata / "repomd.xml.asc"
        signature_path.write_bytes(downloader.fetch_bytes(f"{repo_url}/repodata/repomd.xml.asc"))
        signature: Signature = verify_detached(signature_path, repomd_path, key_file)
        files.append(FetchedFile(signature_path, KIND_INDEX_SIGNATURE, "repomd.xml.asc", "-",
                                 target_arch))
        fingerprint = signature.fingerprint

    repomd = parse_repomd(repomd_path.read_bytes(), source=f"{repo_url}/repodata/repomd.xml")
    primary = repomd["primary"]
    primary_path = folder / PurePosixPath(primary.location)
    downloader.fetch(join_url(repo_url, primary.location), primary_path,
                     Expected(primary.size, primary.algorithm, primary.digest))
    files.append(FetchedFile(primary_path, KIND_TOOLKIT_INDEX, "primary", "-", target_arch))
    index = parse_primary(primary_path.read_bytes(), source=f"{repo_url}/{primary.location}",
                          arch=target_arch)
    return index, fingerprint


def _fetch_fresh(downloader: Downloader, url: str, target: Path, expected: Expected) -> None:
    """Download an index again even when a file is there, since the repository may have moved on."""
    target.unlink(missing_ok=True)
    downloader.fetch(url, target, expected)
