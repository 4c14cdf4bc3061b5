"""A Docker static tarball in the layout of download.docker.com, made from Debian's packages.

Docker's static tarballs hold one folder, docker/, with the daemon, the client, containerd, runc,
tini (as docker-init) and docker-proxy. The demo builder takes the same programs from Debian's
docker.io, containerd, runc and tini packages.

NOTE: Debian builds these programs as dynamically linked executables, unlike Docker's static
ones, so the demo tarball runs only on hosts with Debian 12's libraries (dockerd also needs
libdevmapper1.02.1 and libsystemd0).
"""

from __future__ import annotations

import gzip
import logging
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gpurun.bundle.manifest import sha256_file
from gpurun.demo.debian import deb_field, unpack_deb, upstream_release
from gpurun.errors import BundleError

logger = logging.getLogger("gpurun.demo")

# (name in the tarball's docker/ folder, Debian package, path inside that package)
DOCKER_BINARY_SOURCES: tuple[tuple[str, str, str], ...] = (
    ("dockerd", "docker.io", "usr/sbin/dockerd"),
    ("docker", "docker.io", "usr/bin/docker"),
    ("containerd", "containerd", "usr/bin/containerd"),
    ("containerd-shim-runc-v2", "containerd", "usr/bin/containerd-shim-runc-v2"),
    ("ctr", "containerd", "usr/bin/ctr"),
    ("runc", "runc", "usr/sbin/runc"),
    # docker.io's own docker-init is a symbolic link to tini-static, but the tarball needs the file.
    ("docker-init", "tini", "usr/bin/tini-static"),
    ("docker-proxy", "docker.io", "usr/sbin/docker-proxy"),
)

DOCKER_SOURCE_PACKAGES: tuple[str, ...] = ("docker.io", "containerd", "runc", "tini")


@dataclass(frozen=True)
class DockerTarball:
    """A written Docker static tarball and the facts the manifest records about it."""

    path: Path
    version: str  # Docker's release number, e.g. 20.10.24
    binaries: dict[str, str]  # binary name -> SHA-256


def build_docker_tarball(
    out_dir: Path, debs: Mapping[str, Path], work_dir: Path
) -> DockerTarball:
    """Write docker/docker-<version>.tgz under `out_dir` from the Debian packages in `debs`.

    `debs` maps each name of DOCKER_SOURCE_PACKAGES to its .deb file. Packages are unpacked under
    `work_dir`. Every member is a regular file with mode 0755 owned by root (0/0), and member
    times come from the packages, so the same packages give the same tarball.
    """
    version = upstream_release(deb_field(debs["docker.io"], "Version"))
    unpacked = {name: unpack_deb(debs[name], work_dir / name) for name in DOCKER_SOURCE_PACKAGES}

    sources: list[tuple[str, Path]] = []
    for binary, package, inner_path in DOCKER_BINARY_SOURCES:
        source = unpacked[package] / inner_path
        if source.is_symlink() or not source.is_file():
            raise BundleError(
                f"{inner_path} in {debs[package]} is not a regular file, so it cannot become "
                f"docker/{binary}\n  next step: check that the package is the one Debian 12 ships"
            )
        sources.append((binary, source))

    tarball = out_dir / "docker" / f"docker-{version}.tgz"
    tarball.parent.mkdir(parents=True, exist_ok=True)
    logger.info("writing %s from Debian's %s", tarball, ", ".join(DOCKER_SOURCE_PACKAGES))
    _write_tarball(tarball, sources)

    binaries = {binary: sha256_file(source) for binary, source in sources}
    return DockerTarball(path=tarball, version=version, binaries=binaries)


def _write_tarball(tarball: Path, sources: list[tuple[str, Path]]) -> None:
    # mtime=0 in the gzip header keeps the output identical across builds.
    with open(tarball, "wb") as raw, gzip.GzipFile(
        filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6
    ) as compressed, tarfile.open(fileobj=compressed, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for binary, source in sources:
            info = tarfile.TarInfo(f"docker/{binary}")
            info.size = source.stat().st_size
            info.mtime = int(source.stat().st_mtime)
            info.mode = 0o755
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(source, "rb") as handle:
                tar.addfile(info, handle)
