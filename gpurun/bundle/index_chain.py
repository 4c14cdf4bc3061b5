"""Re-checking a bundle's toolkit packages offline, from the signed index it carries.

The chain is the one the build checked. The vendor's key signs InRelease (apt) or repomd.xml
(yum), that file lists the digest of Packages or primary.xml.gz, and that index lists the
digest of every package. Re-checking it on the control node of the offline network shows the packages
are the vendor's, not only that they match a manifest anyone could rewrite. The index is also
resolved again, so a bundle that lacks a package of the set, or holds one of another version,
is rejected by name.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from gpurun.bundle.apt_repo import parse_packages, parse_release_entries
from gpurun.bundle.archs import deb_arch, rpm_arch
from gpurun.bundle.download import Expected, check_file
from gpurun.bundle.model import (
    KIND_INDEX_SIGNATURE,
    KIND_SIGNED_INDEX,
    KIND_SIGNING_KEY,
    KIND_TOOLKIT_INDEX,
    KIND_TOOLKIT_PACKAGE,
    BundleFile,
    Manifest,
)
from gpurun.bundle.repo_model import RepoIndex, RepoPackage
from gpurun.bundle.resolve import resolve_toolkit
from gpurun.bundle.rpm_repo import parse_primary, parse_repomd
from gpurun.bundle.signatures import verify_cleartext, verify_detached
from gpurun.errors import BundleError


def check_index_chain(
    bundle_dir: Path, manifest: Manifest, key_file: Path | None = None
) -> list[str]:
    """Return one line per problem in the signed index chain, or [] when all of it holds.

    `key_file` is the trusted key to check with; by default the bundle's own signing-key file.
    Bundles without a signed index (the demo bundle, unsigned builds) have no chain, so they
    return [] unless a key file is passed.
    """
    signed = manifest.files_of_kind(KIND_SIGNED_INDEX)
    if not signed:
        if key_file is not None:
            return ["the bundle has no signed index, so the key cannot check anything"]
        return []

    root = Path(bundle_dir)
    if key_file is None:
        keys = manifest.files_of_kind(KIND_SIGNING_KEY)
        if not keys:
            return ["the bundle has a signed index but no signing-key file to check it with"]
        key_file = root / keys[0].path
    try:
        index = load_signed_index(root, manifest, key_file)
        return _check_packages(root, manifest, index)
    except BundleError as error:
        return [str(error).split("\n  next step:")[0]]


def load_signed_index(bundle_dir: Path, manifest: Manifest, key_file: Path) -> RepoIndex:
    """Check the bundle's index signature with `key_file` and return the parsed index."""
    signed = manifest.files_of_kind(KIND_SIGNED_INDEX)[0]
    indexes = manifest.files_of_kind(KIND_TOOLKIT_INDEX)
    if not indexes:
        raise BundleError("the bundle has a signed index but no toolkit-index file")
    index_file = indexes[0]
    index_path = bundle_dir / index_file.path
    repo_folder = PurePosixPath(signed.path).parent

    if manifest.package_format == "deb":
        signature = verify_cleartext(bundle_dir / signed.path, key_file)
        entries = parse_release_entries(signature.signed_text.decode("utf-8"),
                                        source=signed.path)
        name = PurePosixPath(index_file.path).relative_to(repo_folder).as_posix()
        entry = entries.get(name)
        if entry is None:
            raise BundleError(f"{signed.path} does not list {name}")
        _require_match(index_path, _expected(entry.size, entry.checksums), index_file.path)
        return parse_packages(index_path.read_text(encoding="utf-8"), source=index_file.path,
                              arch=deb_arch(manifest.arch))

    signatures = manifest.files_of_kind(KIND_INDEX_SIGNATURE)
    if not signatures:
        raise BundleError(f"the bundle has {signed.path} but not its signature file")
    verify_detached(bundle_dir / signatures[0].path, bundle_dir / signed.path, key_file)
    repomd = parse_repomd((bundle_dir / signed.path).read_bytes(), source=signed.path)
    primary = repomd["primary"]
    # repomd.xml sits in repodata/, and its locations are relative to the folder above.
    repo_root = repo_folder.parent
    if (repo_root / primary.location).as_posix() != index_file.path:
        raise BundleError(f"{signed.path} names {primary.location} as the primary index, "
                          f"but the bundle holds {index_file.path}")
    _require_match(index_path, Expected(primary.size, primary.algorithm, primary.digest),
                   index_file.path)
    return parse_primary(index_path.read_bytes(), source=index_file.path,
                         arch=rpm_arch(manifest.arch))


def package_folder(manifest: Manifest) -> PurePosixPath:
    """Return the bundle folder that package locations of the index are relative to."""
    signed = PurePosixPath(manifest.files_of_kind(KIND_SIGNED_INDEX)[0].path)
    return signed.parent if manifest.package_format == "deb" else signed.parent.parent


def _check_packages(root: Path, manifest: Manifest, index: RepoIndex) -> list[str]:
    problems: list[str] = []
    folder = package_folder(manifest)
    by_location = {(folder / package.location).as_posix(): package for package in index.packages}
    bundled = manifest.files_of_kind(KIND_TOOLKIT_PACKAGE)
    for entry in bundled:
        package = by_location.get(entry.path)
        if package is None:
            problems.append(f"{entry.path}: not listed in the signed index")
            continue
        problem = _index_mismatch(root, entry, package)
        if problem:
            problems.append(f"{entry.path}: {problem}")

    toolkit = [entry for entry in bundled if entry.name == "nvidia-container-toolkit"]
    if not toolkit:
        return problems + ["the bundle has no nvidia-container-toolkit package"]
    resolution = resolve_toolkit(index, toolkit[0].version)
    wanted = {package.name: package.version for package in resolution.packages}
    found = {entry.name: entry.version for entry in bundled}
    for name, version in wanted.items():
        if name not in found:
            problems.append(f"{name} {version} is missing from the bundle, and "
                            f"{toolkit[0].name} {toolkit[0].version} needs it")
        elif found[name] != version:
            problems.append(f"{name} is {found[name]} in the bundle, but {toolkit[0].name} "
                            f"{toolkit[0].version} needs {version}")
    return problems


def _index_mismatch(root: Path, entry: BundleFile, package: RepoPackage) -> str | None:
    if package.name != entry.name or package.version != entry.version:
        return (f"the manifest lists {entry.name} {entry.version}, the signed index "
                f"{package.name} {package.version}")
    return check_file(root / entry.path, _expected(package.size, package.checksums))


def _expected(size: int | None, checksums: dict[str, str]) -> Expected:
    algorithm = "sha256" if "sha256" in checksums else "sha512"
    return Expected(size, algorithm, checksums[algorithm])


def _require_match(path: Path, expected: Expected, shown: str) -> None:
    problem = check_file(path, expected)
    if problem:
        raise BundleError(f"{shown} does not match the signed index: {problem}")
