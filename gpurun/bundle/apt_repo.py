"""Parsing a flat apt repository: its `Packages` index (deb822) and its `Release` hash list.

NVIDIA's apt repository is flat: each architecture folder (stable/deb/amd64/) holds InRelease,
Packages and the .deb files, and each Filename in Packages is relative to that folder
(./libnvidia-container1_1.17.2-1_amd64.deb).
"""

from __future__ import annotations

from dataclasses import dataclass

from debian.deb822 import Packages, PkgRelation, Release

from gpurun.bundle.repo_model import Relation, RepoIndex, RepoPackage
from gpurun.bundle.versions import deb_operator
from gpurun.errors import BundleError

# Release hash fields, strongest first, with the hashlib name of each.
RELEASE_HASH_FIELDS = (("SHA512", "sha512"), ("SHA256", "sha256"))
_PACKAGE_HASH_FIELDS = (("SHA512", "sha512"), ("SHA256", "sha256"))


@dataclass(frozen=True)
class ReleaseEntry:
    """One file that a Release (or InRelease) file lists, with its size and digests."""

    name: str  # relative to the folder of the Release file, e.g. "Packages"
    size: int
    checksums: dict[str, str]  # hashlib algorithm name -> lower-case hex digest


def parse_packages(text: str, *, source: str, arch: str) -> RepoIndex:
    """Parse a `Packages` index into a RepoIndex, keeping packages of `arch` and of `all`.

    `arch` is the Debian name (amd64, arm64). Raises BundleError naming `source` and the
    package when a paragraph lacks a field the bundle needs.
    """
    packages = []
    for paragraph in Packages.iter_paragraphs(text.splitlines(keepends=True), use_apt_pkg=False):
        if "Package" not in paragraph:
            continue
        if paragraph.get("Architecture", "") not in (arch, "all"):
            continue
        packages.append(_package_from(paragraph, source))
    return RepoIndex(package_format="deb", packages=tuple(packages), source=source)


def parse_release_entries(text: str, *, source: str) -> dict[str, ReleaseEntry]:
    """Return the files a Release file lists, by name, with the SHA-512 and SHA-256 it gives.

    `text` must be the verified content of InRelease (the output of gpgv), never the raw file,
    so that nothing outside the signed part is read.
    """
    release = Release(text)
    entries: dict[str, ReleaseEntry] = {}
    for field_name, algorithm in RELEASE_HASH_FIELDS:
        for item in release.get(field_name, []):
            name = item["name"]
            size = int(item["size"])
            digest = item[field_name.lower()].lower()
            known = entries.get(name)
            if known is not None and known.size != size:
                raise BundleError(
                    f"{source} lists {name} with two sizes ({known.size} and {size} bytes)"
                    "\n  next step: the repository is inconsistent; try again later or use "
                    "another mirror"
                )
            checksums = dict(known.checksums) if known else {}
            checksums[algorithm] = digest
            entries[name] = ReleaseEntry(name=name, size=size, checksums=checksums)
    if not entries:
        raise BundleError(
            f"{source} lists no files with SHA512 or SHA256 digests, so the Packages index "
            "cannot be checked against it\n  next step: check that the mirror URL points at "
            "the repository folder of one architecture"
        )
    return entries


def parse_deb_relations(text: str) -> tuple[tuple[Relation, ...], ...]:
    """Parse a Depends or Pre-Depends field into groups of alternatives."""
    groups = []
    for alternatives in PkgRelation.parse_relations(text):
        group = []
        for relation in alternatives:
            bound = relation.get("version")
            if bound is None:
                group.append(Relation(relation["name"]))
            else:
                operator, version = bound
                group.append(Relation(relation["name"], deb_operator(operator), version))
        groups.append(tuple(group))
    return tuple(groups)


def _package_from(paragraph: Packages, source: str) -> RepoPackage:
    name = paragraph["Package"]
    for required in ("Version", "Filename", "Size"):
        if required not in paragraph:
            raise BundleError(
                f"{source}: the entry of {name} has no {required} field"
                "\n  next step: check that the URL points at an apt Packages index"
            )

    checksums = {algorithm: paragraph[field].strip().lower()
                 for field, algorithm in _PACKAGE_HASH_FIELDS if field in paragraph}
    if not checksums:
        raise BundleError(
            f"{source}: the entry of {name} {paragraph['Version']} has neither SHA256 nor "
            "SHA512, so its download cannot be checked\n  next step: use a mirror whose "
            "index lists SHA-256 digests"
        )

    depends_text = ", ".join(
        paragraph[field] for field in ("Pre-Depends", "Depends") if paragraph.get(field)
    )
    provides_text = paragraph.get("Provides", "")
    provides = tuple(group[0] for group in parse_deb_relations(provides_text)) \
        if provides_text else ()
    return RepoPackage(
        name=name,
        version=paragraph["Version"],
        arch=paragraph.get("Architecture", ""),
        location=paragraph["Filename"].removeprefix("./"),
        size=int(paragraph["Size"]),
        checksums=checksums,
        depends=parse_deb_relations(depends_text) if depends_text else (),
        provides=provides,
    )
