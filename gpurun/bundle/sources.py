"""The download sites' folder layouts below a mirror base URL, where a bundle's files come from.

A mirror (a company mirror, or a public one) must keep the upstream layout:
- Docker: `<docker base>/linux/static/stable/<arch>/docker-<version>.tgz`, and
  `docker-rootless-extras-<version>.tgz` beside it, where <arch> is x86_64 or aarch64.
- NVIDIA, apt: `<nvidia base>/stable/deb/<arch>/` holding InRelease, Packages and the .deb
  files, where <arch> is amd64 or arm64.
- NVIDIA, yum: `<nvidia base>/stable/rpm/<arch>/` holding repodata/repomd.xml (and its
  signature repomd.xml.asc) and the .rpm files, where <arch> is x86_64 or aarch64.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from gpurun.bundle.archs import deb_arch, docker_static_arch, rpm_arch
from gpurun.errors import BundleError

# The upstream sites, as documentation and as the default of the CLI and the runbook.
DOCKER_UPSTREAM = "https://download.docker.com"
NVIDIA_UPSTREAM = "https://nvidia.github.io/libnvidia-container"
NVIDIA_KEY_URL = f"{NVIDIA_UPSTREAM}/gpgkey"

# The toolkit version that means the newest release that is no pre-release.
LATEST = "latest"

_DOCKER_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(-(ce|rc\.?[0-9]+|beta\.?[0-9]+))?$")


def checked_base_url(url: str, what: str) -> str:
    """Return `url` without a trailing slash, after checking it is an http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BundleError(f"invalid {what} {url!r}: expected an http:// or https:// URL "
                          f"such as {DOCKER_UPSTREAM}")
    if parts.query or parts.fragment:
        raise BundleError(f"invalid {what} {url!r}: a base URL takes no ?query or #fragment")
    return url.rstrip("/")


def checked_docker_version(version: str) -> str:
    """Return a Docker release number such as 27.3.1, rejecting anything else."""
    if not _DOCKER_VERSION.match(version):
        raise BundleError(f"invalid Docker version {version!r}: expected a release number "
                          "such as 27.3.1 (as in docker-27.3.1.tgz)")
    return version


def docker_folder_url(docker_base: str, arch: str) -> str:
    return f"{checked_base_url(docker_base, 'Docker mirror URL')}/linux/static/stable/" \
           f"{docker_static_arch(arch)}"


def docker_tarball_url(docker_base: str, arch: str, version: str) -> str:
    return f"{docker_folder_url(docker_base, arch)}/docker-{checked_docker_version(version)}.tgz"


def rootless_extras_url(docker_base: str, arch: str, version: str) -> str:
    return (f"{docker_folder_url(docker_base, arch)}/docker-rootless-extras-"
            f"{checked_docker_version(version)}.tgz")


def nvidia_repo_url(nvidia_base: str, package_format: str, arch: str) -> str:
    """Return the URL of the repository folder of one architecture (ends without a slash)."""
    base = checked_base_url(nvidia_base, "NVIDIA mirror URL")
    if package_format == "deb":
        return f"{base}/stable/deb/{deb_arch(arch)}"
    if package_format == "rpm":
        return f"{base}/stable/rpm/{rpm_arch(arch)}"
    raise BundleError(f"unknown package format {package_format!r}: expected deb or rpm")


def join_url(folder_url: str, relative: str) -> str:
    """Append an index's relative file location to a folder URL, refusing `..` and absolute paths.

    A location that leaves the repository folder would let an index point the download, and
    the file it writes, anywhere.
    """
    if relative.startswith("/") or "://" in relative or ".." in relative.split("/"):
        raise BundleError(f"the index names the file location {relative!r}, which leaves the "
                          "repository folder\n  next step: check the mirror")
    return f"{folder_url}/{relative.removeprefix('./')}"
