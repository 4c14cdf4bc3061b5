"""The demo bundle: a complete bundle built without internet, from this machine's apt sources.

It contains a Docker static tarball made from Debian's packages, the stand-in toolkit packages
(deb with a flat apt index, or rpm) and a busybox test image. Host steps read it exactly as they
read a bundle of the real downloads, so a rehearsal on a sandbox host runs every step.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

import gpurun
from gpurun.bundle.archs import deb_arch, local_arch, normalize_arch, rpm_arch
from gpurun.bundle.manifest import (
    KIND_DOCKER_STATIC,
    KIND_TEST_IMAGE,
    KIND_TOOLKIT_INDEX,
    KIND_TOOLKIT_PACKAGE,
    MANIFEST_NAME,
    PACKAGE_FORMATS,
    BundleFile,
    Manifest,
    load_manifest,
    sha256_file,
    verify_bundle,
    write_manifest,
)
from gpurun.demo.apt_index import write_packages_index
from gpurun.demo.debian import DEFAULT_CACHE_DIR, deb_field, fetch_debs
from gpurun.demo.docker_tarball import DOCKER_SOURCE_PACKAGES, build_docker_tarball
from gpurun.demo.image import IMAGE_REPOSITORY, IMAGE_TAG, build_busybox_image
from gpurun.demo.standin_deb import build_standin_debs, release_of
from gpurun.demo.standin_rpm import build_standin_rpms
from gpurun.demo.toolkit_facts import INSTALL_ORDER, STANDIN_VERSION
from gpurun.errors import BundleError

logger = logging.getLogger("gpurun.demo")

DEMO_BUILDER = f"gpurun demo {gpurun.__version__}"


def build_demo_bundle(
    out_dir: Path,
    *,
    cache_dir: Path | None = None,
    arch: str | None = None,
    package_format: str = "deb",
) -> Manifest:
    """Build the demo bundle into `out_dir` and return its manifest.

    `package_format` "rpm" builds the stand-in toolkit packages as rpms with rpmbuild; the
    Docker tarball and the test image are the same for both formats. When `out_dir` already
    contains a valid bundle of the same recipe (builder, arch, package format, toolkit
    version), it is returned as it is. Otherwise the bundle is built in a temporary folder next
    to `out_dir` and renamed into place, replacing an older bundle there. Downloaded packages
    are kept in `cache_dir` (default /var/cache/gpurun/debs). Only this machine's architecture
    can be built, because apt downloads packages of the native architecture.
    """
    out_dir = Path(out_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    target_arch = _check_arch(arch)
    if package_format not in PACKAGE_FORMATS:
        raise BundleError(
            f"invalid package_format {package_format!r} for the demo bundle: use one of "
            f"{', '.join(PACKAGE_FORMATS)}"
        )

    reason = _rebuild_reason(out_dir, target_arch, package_format)
    if reason is None:
        logger.info("%s already contains the demo bundle for %s, not rebuilding",
                    out_dir, target_arch)
        return load_manifest(out_dir)
    logger.info("building the demo bundle in %s: %s", out_dir, reason)

    _check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    try:
        manifest = _build_into(staging, cache_dir, target_arch, package_format)
        _replace_folder(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("demo bundle ready in %s", out_dir)
    return manifest


def _check_arch(arch: str | None) -> str:
    machine_arch = local_arch()
    if arch is None:
        return machine_arch
    requested = normalize_arch(arch)
    if requested != machine_arch:
        raise BundleError(
            f"the demo bundle can be built only for this machine's architecture "
            f"({machine_arch}), because apt downloads Debian packages of the native "
            f"architecture, but {requested} was requested"
            f"\n  next step: build it on a {requested} machine"
        )
    return requested


def _rebuild_reason(out_dir: Path, arch: str, package_format: str) -> str | None:
    """Return why `out_dir` needs a (re)build, or None when it contains this recipe's bundle."""
    if not (out_dir / MANIFEST_NAME).exists():
        return "no bundle there yet"
    try:
        manifest = load_manifest(out_dir)
        problems = verify_bundle(out_dir)
    except BundleError as error:
        return f"the bundle there is invalid ({error})"

    found = (manifest.builder, manifest.arch, manifest.package_format, manifest.toolkit_version)
    wanted = (DEMO_BUILDER, arch, package_format, release_of(STANDIN_VERSION))
    if found != wanted:
        return f"the bundle there was built as {found}, this build is {wanted}"
    if problems:
        return f"the bundle there does not match its manifest ({'; '.join(problems)})"
    return None


def _build_into(bundle_dir: Path, cache_dir: Path, arch: str, package_format: str) -> Manifest:
    debs = fetch_debs([*DOCKER_SOURCE_PACKAGES, "busybox-static"], cache_dir)
    files: list[BundleFile] = []

    with tempfile.TemporaryDirectory(prefix="gpurun-demo-unpack-") as unpack_dir:
        docker = build_docker_tarball(bundle_dir, debs, Path(unpack_dir))
    files.append(_bundle_file(bundle_dir, docker.path, KIND_DOCKER_STATIC, "docker",
                              docker.version, arch))

    if package_format == "rpm":
        files += _standin_rpm_files(bundle_dir, arch)
    else:
        files += _standin_deb_files(bundle_dir, arch)

    with tempfile.TemporaryDirectory(prefix="gpurun-demo-unpack-") as unpack_dir:
        image = build_busybox_image(bundle_dir / "images" / "busybox.tar",
                                    debs["busybox-static"], Path(unpack_dir), arch)
    files.append(_bundle_file(bundle_dir, image.path, KIND_TEST_IMAGE, IMAGE_REPOSITORY,
                              IMAGE_TAG, arch, image=image.reference))

    manifest = Manifest(
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        builder=DEMO_BUILDER,
        arch=arch,
        package_format=package_format,
        docker_version=docker.version,
        toolkit_version=release_of(STANDIN_VERSION),
        files=files,
        toolkit_install_order=list(INSTALL_ORDER),
        docker_binaries=docker.binaries,
    )
    write_manifest(bundle_dir, manifest)
    logger.debug("demo bundle made from Docker %s (Debian docker.io %s)",
                 docker.version, deb_field(debs["docker.io"], "Version"))
    return manifest


def _standin_deb_files(bundle_dir: Path, arch: str) -> list[BundleFile]:
    toolkit_dir = bundle_dir / "toolkit" / "deb"
    packages = build_standin_debs(toolkit_dir, version=STANDIN_VERSION, arch=arch)
    files = [_bundle_file(bundle_dir, deb, KIND_TOOLKIT_PACKAGE, deb_field(deb, "Package"),
                          STANDIN_VERSION, deb_arch(arch), stand_in=True)
             for deb in packages]
    index = write_packages_index(toolkit_dir, packages)
    files.append(_bundle_file(bundle_dir, index, KIND_TOOLKIT_INDEX, "Packages",
                              STANDIN_VERSION, deb_arch(arch), stand_in=True))
    return files


def _standin_rpm_files(bundle_dir: Path, arch: str) -> list[BundleFile]:
    # No repository index: the host steps read names and versions from the manifest, and the
    # demo's rpm set has no dependencies outside itself to resolve.
    toolkit_dir = bundle_dir / "toolkit" / "rpm"
    packages = build_standin_rpms(toolkit_dir, version=STANDIN_VERSION, arch=arch)
    return [_bundle_file(bundle_dir, rpm, KIND_TOOLKIT_PACKAGE, name, STANDIN_VERSION,
                         rpm_arch(arch), stand_in=True)
            for name, rpm in zip(INSTALL_ORDER, packages, strict=True)]


def _bundle_file(
    bundle_dir: Path,
    path: Path,
    kind: str,
    name: str,
    version: str,
    arch: str,
    *,
    stand_in: bool = False,
    image: str | None = None,
) -> BundleFile:
    return BundleFile(
        path=path.relative_to(bundle_dir).as_posix(),
        kind=kind,
        name=name,
        version=version,
        arch=arch,
        size=path.stat().st_size,
        sha256=sha256_file(path),
        stand_in=stand_in,
        image=image,
    )


def _check_replaceable(target: Path) -> None:
    """Raise BundleError unless `target` is absent, an empty folder or a bundle.

    Any other folder is left alone, so a wrong output path never deletes someone's files.
    """
    if not target.exists():
        return
    if not target.is_dir():
        raise BundleError(
            f"{target} exists and is not a folder\n  next step: choose another output path"
        )
    if any(target.iterdir()) and not (target / MANIFEST_NAME).exists():
        raise BundleError(
            f"{target} is not empty and contains no {MANIFEST_NAME}, so it is not a bundle "
            "that may be replaced\n  next step: choose an empty or new output folder"
        )


def _replace_folder(new: Path, target: Path) -> None:
    """Rename `new` to `target`, moving an old bundle or empty folder at `target` away first."""
    _check_replaceable(target)
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        target.rename(old / target.name)
        new.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        new.rename(target)
    target.chmod(0o755)
