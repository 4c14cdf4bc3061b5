"""Parsing a yum repository: `repodata/repomd.xml`, then the `primary.xml.gz` it points to.

repomd.xml lists each metadata file with its location and digest; primary.xml lists every
package with its version, file location, digest, requires and provides. Locations are
relative to the repository folder that contains repodata/ (stable/rpm/x86_64/).
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from gpurun.bundle.repo_model import Relation, RepoIndex, RepoPackage
from gpurun.bundle.versions import rpm_operator
from gpurun.errors import BundleError

_REPO = "{http://linux.duke.edu/metadata/repo}"
_COMMON = "{http://linux.duke.edu/metadata/common}"
_RPM = "{http://linux.duke.edu/metadata/rpm}"

# Digest types gpurun accepts in repomd.xml and primary.xml. "sha" (SHA-1) and md5 are too weak
# to trust a download to.
ACCEPTED_DIGESTS = ("sha256", "sha512")


@dataclass(frozen=True)
class RepomdEntry:
    """One metadata file that repomd.xml lists."""

    data_type: str  # primary, filelists, other, ...
    location: str  # relative to the repository folder, e.g. repodata/<digest>-primary.xml.gz
    algorithm: str  # hashlib name of the digest, sha256 or sha512
    digest: str
    size: int | None


def parse_repomd(data: bytes, *, source: str) -> dict[str, RepomdEntry]:
    """Return the metadata files of repomd.xml by type (primary, filelists, ...)."""
    root = _parse_xml(data, source)
    entries: dict[str, RepomdEntry] = {}
    for element in root.findall(f"{_REPO}data"):
        data_type = element.get("type", "")
        location = element.find(f"{_REPO}location")
        checksum = element.find(f"{_REPO}checksum")
        if location is None or checksum is None or not location.get("href"):
            raise BundleError(f"{source}: the {data_type!r} entry has no location or checksum"
                              "\n  next step: check that the URL points at a yum repository")
        size = element.findtext(f"{_REPO}size")
        entries[data_type] = RepomdEntry(
            data_type=data_type,
            location=location.get("href", ""),
            algorithm=_digest_type(checksum, source, data_type),
            digest=(checksum.text or "").strip().lower(),
            size=int(size) if size else None,
        )
    if "primary" not in entries:
        raise BundleError(f"{source} lists no primary metadata\n  next step: check that the "
                          "URL points at a yum repository (a folder that holds repodata/)")
    return entries


def parse_primary(data: bytes, *, source: str, arch: str) -> RepoIndex:
    """Parse primary.xml (gzip-compressed or plain) into a RepoIndex.

    Keeps packages of `arch` (the rpm name, x86_64 or aarch64) and noarch ones; source rpms
    are left out.
    """
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise BundleError(f"{source} is not a valid gzip file: {error}"
                              "\n  next step: run the build again to download it again") from error
    root = _parse_xml(data, source)
    packages = [
        _package_from(element, source)
        for element in root.findall(f"{_COMMON}package")
        if element.get("type", "rpm") == "rpm"
        and element.findtext(f"{_COMMON}arch") in (arch, "noarch")
    ]
    return RepoIndex(package_format="rpm", packages=tuple(packages), source=source)


def _package_from(element: Element, source: str) -> RepoPackage:
    name = element.findtext(f"{_COMMON}name") or ""
    version = element.find(f"{_COMMON}version")
    checksum = element.find(f"{_COMMON}checksum")
    location = element.find(f"{_COMMON}location")
    size = element.find(f"{_COMMON}size")
    if not name or version is None or checksum is None or location is None or size is None:
        raise BundleError(f"{source}: the package entry {name or '(no name)'} lacks name, "
                          "version, checksum, size or location\n  next step: check the mirror")

    relations = element.find(f"{_COMMON}format")
    return RepoPackage(
        name=name,
        version=_evr(version.get("epoch"), version.get("ver"), version.get("rel")),
        arch=element.findtext(f"{_COMMON}arch") or "",
        location=location.get("href", ""),
        size=int(size.get("package", "0")),
        checksums={_digest_type(checksum, source, name): (checksum.text or "").strip().lower()},
        depends=tuple((relation,) for relation in _relations(relations, "requires")
                      if not relation.name.startswith("rpmlib(")),
        provides=tuple(_relations(relations, "provides")),
    )


def _relations(format_element: Element | None, kind: str) -> list[Relation]:
    if format_element is None:
        return []
    container = format_element.find(f"{_RPM}{kind}")
    if container is None:
        return []
    relations = []
    for entry in container.findall(f"{_RPM}entry"):
        flags = entry.get("flags")
        if flags is None:
            relations.append(Relation(entry.get("name", "")))
            continue
        bound = _evr(entry.get("epoch"), entry.get("ver"), entry.get("rel"))
        relations.append(Relation(entry.get("name", ""), rpm_operator(flags), bound))
    return relations


def _evr(epoch: str | None, version: str | None, release: str | None) -> str:
    text = version or ""
    if release:
        text += f"-{release}"
    if epoch and epoch != "0":
        text = f"{epoch}:{text}"
    return text


def _digest_type(checksum: Element, source: str, what: str) -> str:
    algorithm = checksum.get("type", "")
    if algorithm not in ACCEPTED_DIGESTS:
        raise BundleError(
            f"{source}: {what} has a {algorithm or 'missing'} digest, and gpurun accepts only "
            f"{' or '.join(ACCEPTED_DIGESTS)}\n  next step: use a mirror whose metadata was "
            "made with SHA-256 (createrepo_c does so by default)"
        )
    return algorithm


def _parse_xml(data: bytes, source: str) -> Element:
    try:
        root: Element = ElementTree.fromstring(data)
    except (ElementTree.ParseError, DefusedXmlException) as error:
        raise BundleError(f"{source} is not valid XML: {error}"
                          "\n  next step: check that the mirror URL is right") from error
    return root
