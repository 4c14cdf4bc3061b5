"""`gpurun bundle build`: an offline bundle from the download sites or their mirrors.

It runs on a machine with internet (or with a mirror), once per bundle, not per host. The build
writes straight into the output folder, so a run that was interrupted, run again, keeps every
file that is complete and matches, resumes partial downloads, and fetches only the rest. The
manifest is removed at the start and written last, so a folder with a manifest is a finished
bundle.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import gpurun
from gpurun.bundle.archs import normalize_arch
from gpurun.bundle.docker_static import (
    TarballContents,
    read_tarball,
    require_arch,
    require_binaries,
)
from gpurun.bundle.download import Downloader, Expected
from gpurun.bundle.manifest import (
    load_manifest,
    manifest_path,
    require_valid_bundle,
    sha256_file,
    write_manifest,
)
from gpurun.bundle.model import (
    KIND_DOCKER_STATIC,
    KIND_ROOTLESS_EXTRAS,
    KIND_TEST_IMAGE,
    MANIFEST_NAME,
    PACKAGE_FORMATS,
    BundleFile,
    Manifest,
)
from gpurun.bundle.resolve import LATEST, Resolution
from gpurun.bundle.sources import (
    DOCKER_UPSTREAM,
    NVIDIA_UPSTREAM,
    checked_docker_version,
    docker_tarball_url,
    rootless_extras_url,
)
from gpurun.bundle.toolkit_fetch import FetchedFile, fetch_toolkit
from gpurun.bundle.versions import upstream_of
from gpurun.errors import BundleError

logger = logging.getLogger("gpurun.bundle")

BUILDER = f"gpurun bundle {gpurun.__version__}"
BUILD_MARKER = ".gpurun-bundle-build"  # marks a folder that a build wrote into
MANAGED_FOLDERS = ("docker", "toolkit", "keys", "images")

# The programs the host steps install and start; a Docker tarball without them is rejected.
REQUIRED_DOCKER_BINARIES = ("docker", "dockerd", "containerd", "runc")


@dataclass(frozen=True)
class BuildRequest:
    """Every parameter of one bundle build."""

    out_dir: Path
    docker_version: str  # e.g. 27.3.1, as in docker-27.3.1.tgz
    arch: str  # any spelling gpurun.bundle.archs accepts: x86_64, amd64, aarch64, arm64
    toolkit_version: str = LATEST  # "latest", 1.17.2 or 1.17.2-1
    package_format: str = "deb"
    docker_mirror: str = DOCKER_UPSTREAM
    nvidia_mirror: str = NVIDIA_UPSTREAM
    key_file: Path | None = None  # the vendor's public key that signs the repository index
    allow_unsigned: bool = False
    rootless_extras: bool = False
    docker_sha256: str | None = None  # pins the tarball, which Docker publishes no digest for
    rootless_extras_sha256: str | None = None
    # A `docker save` archive. NOTE: pulling the test image from a registry mirror is not
    # implemented; save it with Docker on the connected machine first.
    test_image: Path | None = None
    progress: bool = True


@dataclass(frozen=True)
class BuildResult:
    """A finished bundle: its manifest, the toolkit resolution, and what was downloaded."""

    manifest: Manifest
    resolution: Resolution
    downloaded: list[str] = field(default_factory=list)  # bundle paths fetched in this run
    reused: list[str] = field(default_factory=list)  # bundle paths kept from an earlier run


def build_bundle(request: BuildRequest) -> BuildResult:
    """Build (or complete) the bundle that `request` describes and return it verified.

    Raises BundleError when a parameter is invalid, a download fails or does not match, a
    signature is bad, or the toolkit package set is incomplete or of mixed versions.
    """
    arch = normalize_arch(request.arch)
    docker_version = checked_docker_version(request.docker_version)
    if request.package_format not in PACKAGE_FORMATS:
        raise BundleError(f"invalid package format {request.package_format!r}: expected "
                          f"{' or '.join(PACKAGE_FORMATS)}")
    out_dir = Path(request.out_dir)
    recorded = _prepare_folder(out_dir)

    downloader = Downloader(progress=request.progress)
    try:
        docker_file, binaries = _fetch_docker(downloader, request, arch, docker_version, recorded)
        files = [docker_file]
        if request.rootless_extras:
            files.append(_fetch_rootless_extras(downloader, request, arch, docker_version,
                                                recorded))
        toolkit = fetch_toolkit(
            downloader, out_dir, nvidia_mirror=request.nvidia_mirror,
            package_format=request.package_format, arch=arch,
            toolkit_version=request.toolkit_version, key_file=request.key_file,
            allow_unsigned=request.allow_unsigned,
        )
    finally:
        downloader.close()
    files += [_bundle_file(out_dir, fetched) for fetched in toolkit.files]
    if request.test_image is not None:
        files.append(_copy_test_image(out_dir, request.test_image, arch))

    resolution = toolkit.resolution
    sources = {
        "docker_tarball": docker_tarball_url(request.docker_mirror, arch, docker_version),
        "toolkit_repository": toolkit.repository_url,
        "toolkit_host_requirements": ", ".join(resolution.host_requirements) or "none",
        "toolkit_package_set": resolution.toolkit_set.name,
    }
    if toolkit.key_fingerprint:
        sources["signing_key_fingerprint"] = toolkit.key_fingerprint
    manifest = Manifest(
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        builder=BUILDER,
        arch=arch,
        package_format=request.package_format,
        docker_version=docker_version,
        toolkit_version=upstream_of(resolution.toolkit.version),
        files=files,
        toolkit_install_order=resolution.install_order,
        docker_binaries=binaries,
        sources=sources,
    )
    _remove_stale_files(out_dir, {entry.path for entry in files})
    write_manifest(out_dir, manifest)
    require_valid_bundle(out_dir)
    (out_dir / BUILD_MARKER).unlink(missing_ok=True)
    logger.info("bundle ready in %s: Docker %s, toolkit %s (%s), %d files",
                out_dir, docker_version, resolution.toolkit.version,
                ", ".join(resolution.install_order), len(files))
    downloaded = [f.path.relative_to(out_dir).as_posix() for f in downloader.fetched
                  if f.downloaded]
    reused = [f.path.relative_to(out_dir).as_posix() for f in downloader.fetched
              if not f.downloaded]
    return BuildResult(manifest, resolution, downloaded, reused)


def _prepare_folder(out_dir: Path) -> dict[str, BundleFile]:
    """Make `out_dir` ready for a build and return the files an earlier manifest recorded.

    The folder must be new, empty, an earlier bundle, or one an interrupted build left, so a
    wrong path never mixes a bundle into someone's files.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise BundleError(f"{out_dir} exists and is not a folder\n  next step: choose another "
                          "output folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        ours = (out_dir / MANIFEST_NAME).exists() or (out_dir / BUILD_MARKER).exists()
        if not ours:
            raise BundleError(
                f"{out_dir} is not empty and is not a bundle (no {MANIFEST_NAME} or "
                f"{BUILD_MARKER})\n  next step: choose an empty or new output folder"
            )

    recorded: dict[str, BundleFile] = {}
    if manifest_path(out_dir).exists():
        try:
            recorded = {entry.path: entry for entry in load_manifest(out_dir).files}
        except BundleError as error:
            logger.warning("ignoring the earlier manifest in %s: %s", out_dir, error)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / BUILD_MARKER).write_text(f"{BUILDER} is writing this bundle\n")
    manifest_path(out_dir).unlink(missing_ok=True)
    return recorded


def _fetch_docker(
    downloader: Downloader,
    request: BuildRequest,
    arch: str,
    version: str,
    recorded: dict[str, BundleFile],
) -> tuple[BundleFile, dict[str, str]]:
    url = docker_tarball_url(request.docker_mirror, arch, version)
    target = request.out_dir / "docker" / f"docker-{version}.tgz"
    _fetch_unpublished(downloader, url, target, target.relative_to(request.out_dir).as_posix(),
                       request.docker_sha256, recorded)
    contents = _read_or_refetch(downloader, url, target, "docker",
                                request.docker_sha256)
    require_arch(contents, target, arch)
    require_binaries(contents, target, REQUIRED_DOCKER_BINARIES)
    entry = _entry(request.out_dir, target, KIND_DOCKER_STATIC, "docker", version, arch)
    logger.info("Docker %s: SHA-256 %s recorded at download (Docker publishes none)",
                version, entry.sha256)
    return entry, contents.files


def _fetch_rootless_extras(
    downloader: Downloader,
    request: BuildRequest,
    arch: str,
    version: str,
    recorded: dict[str, BundleFile],
) -> BundleFile:
    url = rootless_extras_url(request.docker_mirror, arch, version)
    target = request.out_dir / "docker" / f"docker-rootless-extras-{version}.tgz"
    _fetch_unpublished(downloader, url, target, target.relative_to(request.out_dir).as_posix(),
                       request.rootless_extras_sha256, recorded)
    contents = _read_or_refetch(downloader, url, target, "docker-rootless-extras",
                                request.rootless_extras_sha256)
    require_arch(contents, target, arch)
    return _entry(request.out_dir, target, KIND_ROOTLESS_EXTRAS, "docker-rootless-extras",
                  version, arch)


def _fetch_unpublished(
    downloader: Downloader,
    url: str,
    target: Path,
    relative: str,
    pinned_sha256: str | None,
    recorded: dict[str, BundleFile],
) -> None:
    """Fetch a file that has no published digest, checked against a pin or an earlier record."""
    earlier = recorded.get(relative)
    if pinned_sha256:
        expected = Expected(None, "sha256", _checked_sha256(pinned_sha256))
    elif earlier is not None:
        expected = Expected(earlier.size, "sha256", earlier.sha256)
    else:
        expected = Expected()
    if earlier is not None and not pinned_sha256 and target.is_file():
        logger.info("%s: checking against the SHA-256 recorded by the earlier build", relative)
    downloader.fetch(url, target, expected)


def _read_or_refetch(
    downloader: Downloader,
    url: str,
    target: Path,
    folder: str,
    pinned_sha256: str | None,
) -> TarballContents:
    """Read the tarball; if it is damaged and nothing pins it, download it once more."""
    try:
        return read_tarball(target, folder)
    except BundleError as error:
        if pinned_sha256:
            raise
        logger.warning("%s; downloading it again", error)
        target.unlink()
        downloader.fetch(url, target)
        return read_tarball(target, folder)


def _copy_test_image(out_dir: Path, image: Path, arch: str) -> BundleFile:
    """Copy a `docker save` archive into images/ and record the image it loads as."""
    reference = _image_reference(image)
    target = out_dir / "images" / image.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not (target.exists() and os.path.samefile(image, target)):
        shutil.copyfile(image, target)
    name, _, tag = reference.rpartition(":")
    return _entry(out_dir, target, KIND_TEST_IMAGE, name or reference, tag or "latest", arch,
                  image=reference)


def _image_reference(image: Path) -> str:
    try:
        with tarfile.open(image) as tar:
            member = tar.extractfile("manifest.json")
            data = json.load(member) if member else []
    except (KeyError, tarfile.TarError, OSError, ValueError) as error:
        raise BundleError(f"{image} is not a `docker save` archive ({error})"
                          "\n  next step: pass a file written by `docker save IMAGE -o FILE`") \
            from error
    tags = [tag for item in data if isinstance(item, dict) for tag in item.get("RepoTags") or []]
    if not tags:
        raise BundleError(f"{image} has no tagged image (manifest.json lists no RepoTags)"
                          "\n  next step: save the image by its name, e.g. `docker save "
                          "busybox:latest -o busybox.tar`")
    return str(tags[0])


def _entry(out_dir: Path, path: Path, kind: str, name: str, version: str, arch: str,
           *, image: str | None = None) -> BundleFile:
    return BundleFile(path=path.relative_to(out_dir).as_posix(), kind=kind, name=name,
                      version=version, arch=arch, size=path.stat().st_size,
                      sha256=sha256_file(path), image=image)


def _bundle_file(out_dir: Path, fetched: FetchedFile) -> BundleFile:
    return _entry(out_dir, fetched.path, fetched.kind, fetched.name, fetched.version,
                  fetched.arch)


def _remove_stale_files(out_dir: Path, keep: set[str]) -> None:
    """Delete files an earlier build left in the bundle's folders that this bundle does not list."""
    for folder in MANAGED_FOLDERS:
        for path in sorted((out_dir / folder).rglob("*")):
            relative = path.relative_to(out_dir).as_posix()
            if path.is_file() and relative not in keep:
                logger.info("removing %s, which this bundle does not list", relative)
                path.unlink()


def _checked_sha256(value: str) -> str:
    text = value.strip().lower()
    if len(text) != 64 or any(char not in "0123456789abcdef" for char in text):
        raise BundleError(f"invalid SHA-256 {value!r}: expected 64 hex digits")
    return text
