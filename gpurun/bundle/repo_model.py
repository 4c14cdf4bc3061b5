"""Packages as a repository index lists them, for both apt `Packages` and yum `primary.xml`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Relation:
    """One dependency or provide: a name, and optionally an operator and a version bound.

    The operator is in gpurun's spelling (<, <=, =, >=, >), whatever the index wrote.
    """

    name: str
    operator: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.operator is None:
            return self.name
        return f"{self.name} ({self.operator} {self.version})"


@dataclass(frozen=True)
class RepoPackage:
    """One package file that a repository index lists."""

    name: str
    version: str  # deb: [epoch:]upstream-revision; rpm: [epoch:]version-release
    arch: str  # in the index's own naming: amd64 or all for deb, x86_64 or noarch for rpm
    location: str  # path of the file relative to the repository folder the index is in
    size: int  # bytes
    checksums: dict[str, str]  # algorithm (sha256, sha512) -> lower-case hex digest
    # Each inner tuple is a group of alternatives ("a | b"); every group must be met.
    depends: tuple[tuple[Relation, ...], ...] = ()
    provides: tuple[Relation, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class RepoIndex:
    """The parsed package index of one repository folder (one architecture)."""

    package_format: str  # "deb" or "rpm"
    packages: tuple[RepoPackage, ...]
    source: str  # where the index was read from, for messages
    by_name: dict[str, list[RepoPackage]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, list[RepoPackage]] = {}
        for package in self.packages:
            by_name.setdefault(package.name, []).append(package)
        object.__setattr__(self, "by_name", by_name)

    def versions_of(self, name: str) -> list[RepoPackage]:
        return list(self.by_name.get(name, []))

    def providers_of(self, name: str) -> list[tuple[RepoPackage, Relation | None]]:
        """Return packages named `name` (with None) and packages providing it (with the provide)."""
        found: list[tuple[RepoPackage, Relation | None]] = [
            (package, None) for package in self.by_name.get(name, [])
        ]
        for package in self.packages:
            for provide in package.provides:
                if provide.name == name and package.name != name:
                    found.append((package, provide))
        return found
