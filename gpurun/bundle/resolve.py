"""Choosing the toolkit packages of one version from a repository index, with their dependencies.

The result is the closure of the package set a static-Docker host needs (gpurun.bundle.toolkit_sets)
under the Depends (deb) or Requires (rpm) relations that the repository itself can meet, in an
order that puts every dependency before the packages that need it. Relations that no package
of the repository meets (libc6, libseccomp2) are left to the host and listed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from gpurun.bundle.repo_model import Relation, RepoIndex, RepoPackage
from gpurun.bundle.sources import LATEST
from gpurun.bundle.toolkit_sets import (
    EXCLUDED_PACKAGES,
    PACKAGED_DOCKER,
    TOOLKIT,
    ToolkitSet,
    toolkit_set_for,
)
from gpurun.bundle.versions import is_pre_release, satisfies, sort_key, upstream_of
from gpurun.errors import BundleError

__all__ = ["LATEST", "Resolution", "resolve_toolkit", "select_toolkit", "toolkit_versions"]


@dataclass(frozen=True)
class Resolution:
    """The toolkit packages to bundle, in install order, and what the host must provide."""

    toolkit: RepoPackage
    toolkit_set: ToolkitSet
    packages: tuple[RepoPackage, ...]  # dependencies first
    host_requirements: tuple[str, ...]  # relations no package of the repository meets
    reasons: dict[str, str]  # package name -> why it is in the bundle

    @property
    def install_order(self) -> list[str]:
        return [package.name for package in self.packages]


def toolkit_versions(index: RepoIndex) -> list[str]:
    """Return every version of nvidia-container-toolkit the index lists, oldest first."""
    versions = {package.version for package in index.versions_of(TOOLKIT)}
    return sorted(versions, key=sort_key(index.package_format))


def select_toolkit(index: RepoIndex, requested: str = LATEST) -> RepoPackage:
    """Return the nvidia-container-toolkit entry for `requested`.

    `requested` is "latest" (the newest version that is no pre-release), a full package
    version (1.17.2-1) or an upstream version (1.17.2, which takes its newest revision).
    """
    candidates = index.versions_of(TOOLKIT)
    if not candidates:
        raise BundleError(
            f"{index.source} lists no {TOOLKIT} package\n  next step: check that the mirror "
            "URL points at NVIDIA's libnvidia-container repository for this architecture"
        )
    key = sort_key(index.package_format)
    if requested == LATEST:
        stable = [package for package in candidates if not is_pre_release(package.version)]
        if not stable:
            raise BundleError(f"{index.source} lists only pre-releases of {TOOLKIT}: "
                              f"{_listing(candidates, index.package_format)}"
                              "\n  next step: pass one of them as the toolkit version")
        return max(stable, key=lambda package: key(package.version))

    exact = [package for package in candidates if package.version == requested]
    if not exact:
        exact = [package for package in candidates if upstream_of(package.version) == requested]
    if not exact:
        raise BundleError(
            f"{TOOLKIT} version {requested!r} not found in {index.source}; it lists "
            f"{_listing(candidates, index.package_format)}"
            "\n  next step: choose one of these versions, or \"latest\""
        )
    return max(exact, key=lambda package: key(package.version))


def resolve_toolkit(index: RepoIndex, requested: str = LATEST) -> Resolution:
    """Resolve the toolkit package set of version `requested` from `index`.

    Raises BundleError naming the package when the repository lacks a package of the set at
    the toolkit's version, when a dependency cannot be met by any version it has, when two
    relations ask for different versions of one package, or when a dependency would pull in
    nvidia-docker2 or a packaged Docker.
    """
    toolkit = select_toolkit(index, requested)
    toolkit_set = toolkit_set_for(index.package_format, toolkit.version)
    closure = _Closure(index, toolkit, toolkit_set)
    closure.add_roots()
    closure.follow_dependencies()
    closure.check_same_version()
    return Resolution(
        toolkit=toolkit,
        toolkit_set=toolkit_set,
        packages=tuple(_install_order(closure.chosen, toolkit_set)),
        host_requirements=tuple(closure.host_requirements),
        reasons=dict(closure.reasons),
    )


class _Closure:
    """The packages chosen so far, grown from the set's roots along dependency relations."""

    def __init__(self, index: RepoIndex, toolkit: RepoPackage, toolkit_set: ToolkitSet) -> None:
        self.index = index
        self.toolkit = toolkit
        self.toolkit_set = toolkit_set
        self.chosen: dict[str, RepoPackage] = {}
        self.reasons: dict[str, str] = {}
        self.host_requirements: list[str] = []
        self._queue: deque[RepoPackage] = deque()

    def add_roots(self) -> None:
        for name in self.toolkit_set.packages:
            if name in self.chosen:
                continue
            if name == TOOLKIT:
                package = self.toolkit
            elif name in self.toolkit_set.same_version:
                package = self._same_version_package(name)
            else:
                package = self._newest_fitting(name)
            self._choose(package, f"part of the {self.toolkit_set.name} package set")

    def follow_dependencies(self) -> None:
        while self._queue:
            package = self._queue.popleft()
            for group in package.depends:
                self._meet(package, group)

    def check_same_version(self) -> None:
        """Reject a set whose lock-step packages differ from the toolkit's upstream version."""
        wanted = upstream_of(self.toolkit.version)
        for name in self.toolkit_set.same_version:
            package = self.chosen[name]
            if upstream_of(package.version) != wanted:
                raise BundleError(
                    f"mixed versions: {package.label} would go into the bundle with "
                    f"{self.toolkit.label}, but the {self.toolkit_set.name} set is released "
                    f"as one version\n  next step: use a mirror that has {name} {wanted}, or "
                    f"choose another toolkit version"
                )

    def _same_version_package(self, name: str) -> RepoPackage:
        wanted = upstream_of(self.toolkit.version)
        versions = self.index.versions_of(name)
        exact = [package for package in versions if package.version == self.toolkit.version]
        matching = exact or [package for package in versions
                             if upstream_of(package.version) == wanted]
        if not matching:
            raise BundleError(
                f"incomplete package set: {self.index.source} has no {name} {wanted}, which "
                f"{self.toolkit.label} needs ({self.toolkit_set.name} set; it has "
                f"{_listing(versions, self.index.package_format)})\n  next step: mirror the "
                "whole repository, or choose a toolkit version whose packages are all there"
            )
        key = sort_key(self.index.package_format)
        return max(matching, key=lambda package: key(package.version))

    def _newest_fitting(self, name: str) -> RepoPackage:
        """Return the newest `name` whose relations to the packages chosen so far are met."""
        key = sort_key(self.index.package_format)
        versions = sorted(self.index.versions_of(name), key=lambda p: key(p.version), reverse=True)
        for package in versions:
            if all(self._group_fits_chosen(group) for group in package.depends):
                return package
        raise BundleError(
            f"incomplete package set: {self.index.source} has no {name} that fits "
            f"{self.toolkit.label} (it has {_listing(versions, self.index.package_format)})"
            "\n  next step: mirror the whole repository, or choose another toolkit version"
        )

    def _group_fits_chosen(self, group: tuple[Relation, ...]) -> bool:
        """Return False when the group names only chosen packages and none of them fits."""
        named = [relation for relation in group if relation.name in self.chosen]
        if len(named) < len(group):
            return True
        return any(self._satisfied_by(self.chosen[r.name], r, None) for r in named)

    def _meet(self, package: RepoPackage, group: tuple[Relation, ...]) -> None:
        text = " | ".join(str(relation) for relation in group)
        if any(self._met_by_chosen(relation) for relation in group):
            return

        candidates = [(relation, self._candidates(relation)) for relation in group]
        known = [(relation, found) for relation, found in candidates
                 if self.index.providers_of(relation.name)]
        if not known:
            docker = [relation.name for relation in group if relation.name in PACKAGED_DOCKER]
            if docker:
                raise BundleError(
                    f"{package.label} depends on a packaged Docker ({text}), which a host with "
                    f"Docker's static binaries does not have\n  next step: choose a toolkit "
                    f"version whose packages do not need {package.name}"
                )
            if text not in self.host_requirements:
                self.host_requirements.append(text)
            return

        for relation, found in known:
            if found:
                self._choose(self._preferred(found), f"{package.label} depends on {text}")
                return

        relation = known[0][0]
        clash = self.chosen.get(relation.name)
        if clash is not None:
            raise BundleError(
                f"mixed versions: {package.label} depends on {relation}, but the set already "
                f"has {clash.label}\n  next step: choose another toolkit version, or check "
                "the mirror for a partial update"
            )
        versions = [provider for provider, _ in self.index.providers_of(relation.name)]
        raise BundleError(
            f"incomplete package set: {package.label} depends on {text}, and "
            f"{self.index.source} has only {_listing(versions, self.index.package_format)}"
            "\n  next step: mirror the whole repository, or choose another toolkit version"
        )

    def _met_by_chosen(self, relation: Relation) -> bool:
        for package in self.chosen.values():
            if package.name == relation.name and self._satisfied_by(package, relation, None):
                return True
            for provide in package.provides:
                if provide.name == relation.name and self._satisfied_by(package, relation,
                                                                        provide):
                    return True
        return False

    def _candidates(self, relation: Relation) -> list[RepoPackage]:
        return [package for package, provide in self.index.providers_of(relation.name)
                if self._satisfied_by(package, relation, provide)
                and package.name not in self.chosen]

    def _satisfied_by(
        self, package: RepoPackage, relation: Relation, provide: Relation | None
    ) -> bool:
        if relation.operator is None or relation.version is None:
            return True
        if provide is None:
            version = package.version
        elif provide.version is None:
            # rpm lets an unversioned provide meet any versioned requirement; dpkg does not.
            return self.index.package_format == "rpm"
        else:
            version = provide.version
        return satisfies(self.index.package_format, version, relation.operator, relation.version)

    def _preferred(self, found: list[RepoPackage]) -> RepoPackage:
        """Prefer a package of the toolkit's own version, then the newest one."""
        same = [package for package in found if package.version == self.toolkit.version]
        if same:
            return same[0]
        key = sort_key(self.index.package_format)
        return max(found, key=lambda package: key(package.version))

    def _choose(self, package: RepoPackage, reason: str) -> None:
        if package.name in EXCLUDED_PACKAGES:
            raise BundleError(
                f"{package.label} would go into the bundle ({reason}), but a host with "
                f"Docker's static binaries must not get it: {EXCLUDED_PACKAGES[package.name]}"
                "\n  next step: choose a toolkit version whose packages do not need it"
            )
        self.chosen[package.name] = package
        self.reasons[package.name] = reason
        self._queue.append(package)


def _install_order(chosen: dict[str, RepoPackage], toolkit_set: ToolkitSet) -> list[RepoPackage]:
    """Sort so each package comes after the chosen packages it depends on (Kahn's algorithm).

    Ties keep the order of the package set, then names. A dependency cycle cannot be ordered,
    so its packages follow in that same tie order; dpkg and rpm take one transaction anyway.
    """
    rank = {name: index for index, name in enumerate(toolkit_set.packages)}

    def tie_key(name: str) -> tuple[int, str]:
        return (rank.get(name, len(rank)), name)

    needs: dict[str, set[str]] = {name: set() for name in chosen}
    for name, package in chosen.items():
        for group in package.depends:
            for relation in group:
                for candidate in chosen.values():
                    provides = {provide.name for provide in candidate.provides}
                    if candidate.name != name and relation.name in ({candidate.name} | provides):
                        needs[name].add(candidate.name)

    order: list[str] = []
    ready = sorted((name for name, deps in needs.items() if not deps), key=tie_key)
    while ready:
        name = ready.pop(0)
        order.append(name)
        for other, deps in needs.items():
            if name in deps:
                deps.discard(name)
                if not deps and other not in order and other not in ready:
                    ready.append(other)
        ready.sort(key=tie_key)
    order += sorted((name for name in chosen if name not in order), key=tie_key)
    return [chosen[name] for name in order]


def _listing(packages: list[RepoPackage], package_format: str) -> str:
    """Return the versions of `packages` as a short text, oldest first."""
    if not packages:
        return "none"
    versions = sorted({package.version for package in packages}, key=sort_key(package_format))
    shown = ", ".join(versions[-8:])
    return shown if len(versions) <= 8 else f"{len(versions)} versions, the last {shown}"
