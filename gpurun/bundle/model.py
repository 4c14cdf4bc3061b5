"""The bundle manifest's data: the files of a bundle and the facts host steps read from it.

A bundle is a folder an operator carries into an offline network. Its manifest.json lists every
file the host steps upload, with size and SHA-256. It also records the facts the steps need
without unpacking anything: the Docker and toolkit versions, the toolkit install order, and the
SHA-256 of each binary inside the Docker tarball. The demo builder and the download path write
the same format.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpurun.errors import BundleError

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"

KIND_DOCKER_STATIC = "docker-static"
KIND_TOOLKIT_PACKAGE = "toolkit-package"
KIND_TOOLKIT_INDEX = "toolkit-index"
KIND_TEST_IMAGE = "test-image"
# Kinds written by `gpurun bundle build`. The host steps skip them; `gpurun bundle verify`
# checks the signed index chain with them.
KIND_ROOTLESS_EXTRAS = "docker-rootless-extras"
KIND_SIGNED_INDEX = "signed-index"  # apt InRelease, or yum repomd.xml
KIND_INDEX_SIGNATURE = "index-signature"  # yum repomd.xml.asc, the detached signature
KIND_SIGNING_KEY = "signing-key"  # the vendor's public key the build checked the index with

PACKAGE_FORMATS = ("deb", "rpm")

REBUILD_HINT = (
    "copy the bundle again from the machine that built it, or rebuild it "
    "(`gpurun bundle demo DIR` builds the demo bundle)"
)


@dataclass(frozen=True)
class BundleFile:
    """One file of a bundle, as the manifest lists it."""

    path: str  # relative to the bundle root, with forward slashes
    kind: str  # one of the KIND_* names, and readers skip kinds they do not know
    name: str  # package or artifact name, e.g. "docker" or "libnvidia-container1"
    version: str
    arch: str  # in the file's own naming scheme: amd64 for a deb, x86_64 for a tarball
    size: int  # bytes
    sha256: str  # lower-case hex
    stand_in: bool = False  # True for gpurun's stand-ins, which contain no vendor code
    image: str | None = None  # the image reference a test image loads as

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "path": self.path,
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "arch": self.arch,
            "size": self.size,
            "sha256": self.sha256,
            "stand_in": self.stand_in,
        }
        if self.image is not None:
            data["image"] = self.image
        return data


@dataclass(frozen=True)
class Manifest:
    """The parsed contents of a bundle's manifest.json."""

    created: str  # UTC time in ISO 8601, e.g. 2024-11-20T10:00:00Z
    builder: str  # the tool and version that wrote the bundle, e.g. "gpurun demo 0.1.0"
    arch: str  # `uname -m` name of the hosts the bundle is for
    package_format: str  # "deb" or "rpm": the format of the toolkit packages
    docker_version: str
    toolkit_version: str
    files: list[BundleFile] = field(default_factory=list)
    toolkit_install_order: list[str] = field(default_factory=list)
    docker_binaries: dict[str, str] = field(default_factory=dict)  # binary name -> SHA-256
    format: int = FORMAT_VERSION
    # Where the files came from (URLs, the signing key's fingerprint), for the record.
    sources: dict[str, str] = field(default_factory=dict)

    def files_of_kind(self, kind: str) -> list[BundleFile]:
        return [entry for entry in self.files if entry.kind == kind]

    def docker_tarball(self) -> BundleFile:
        """Return the Docker static tarball, raising BundleError if the bundle has none."""
        tarballs = self.files_of_kind(KIND_DOCKER_STATIC)
        if not tarballs:
            raise BundleError(
                f"the bundle (built by {self.builder}) has no {KIND_DOCKER_STATIC} file"
                f"\n  next step: {REBUILD_HINT}"
            )
        return tarballs[0]

    def toolkit_packages(self) -> list[BundleFile]:
        """Return the toolkit packages in install order (dependencies first)."""
        by_name = {entry.name: entry for entry in self.files_of_kind(KIND_TOOLKIT_PACKAGE)}
        return [by_name[name] for name in self.toolkit_install_order]

    def test_image(self) -> BundleFile | None:
        images = self.files_of_kind(KIND_TEST_IMAGE)
        return images[0] if images else None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "format": self.format,
            "created": self.created,
            "builder": self.builder,
            "arch": self.arch,
            "package_format": self.package_format,
            "docker_version": self.docker_version,
            "toolkit_version": self.toolkit_version,
            "files": [entry.to_json() for entry in self.files],
            "toolkit_install_order": list(self.toolkit_install_order),
            "docker_binaries": dict(self.docker_binaries),
        }
        if self.sources:
            data["sources"] = dict(self.sources)
        return data
