"""Install the toolkit packages with dpkg or rpm, all in one transaction."""

from __future__ import annotations

from pathlib import PurePosixPath

from gpurun.errors import BundleError, GpurunError
from gpurun.host import Host
from gpurun.host.changes import FileChange

# A package may not own these files: gpurun merges into them instead (older nvidia-docker2
# packages shipped their own daemon.json, which would replace the operator's settings).
PROTECTED_FILES = {"/etc/docker/daemon.json"}


def reject_protected_files(host: Host, package: PurePosixPath, package_format: str) -> None:
    """Refuse a package that would overwrite a file gpurun manages by merging."""
    if package_format == "deb":
        listing = host.run(["dpkg-deb", "-c", str(package)])
        paths = {line.split()[-1].lstrip(".") for line in listing.stdout.splitlines() if line}
    else:
        listing = host.run(["rpm", "-qlp", str(package)])
        paths = set(listing.stdout.split())
    owned = sorted(paths & PROTECTED_FILES)
    if owned:
        raise BundleError(
            f"package {package.name} would replace {', '.join(owned)} on host {host.name}\n"
            f"  next step: leave this package out of the bundle; with a static Docker the "
            f"runtime step registers the nvidia runtime by merging into daemon.json"
        )


def install_command(packages: list[PurePosixPath], package_format: str, forced: bool) -> list[str]:
    """Return the one command that installs all packages; forcing only when asked."""
    if package_format == "deb":
        force = ["--force-depends"] if forced else []
        return ["dpkg", "-i", *force, *map(str, packages)]
    if package_format == "rpm":
        force = ["--nodeps", "--force"] if forced else []
        return ["rpm", "-Uvh", "--replacepkgs", *force, *map(str, packages)]
    raise NotImplementedError(f"package format {package_format!r} is not supported: use deb or rpm")


def install(
    host: Host,
    packages: list[PurePosixPath],
    names: list[str],
    versions_before: dict[str, str],
    versions_wanted: dict[str, str],
    package_format: str,
    forced: bool,
) -> list[FileChange]:
    """Install the packages in one transaction and record each one's version change."""
    host.run(install_command(packages, package_format, forced), timeout=600,
             hint="the packages above are the bundle's; a missing dependency means the bundle "
                  "is incomplete: rebuild it")
    changes = []
    for name in names:
        before = versions_before.get(name)
        change = FileChange(
            path=f"package {name}",
            action="package-upgraded" if before else "package-installed",
            sha256_before=None, sha256_after=None, backup=None,
            version_before=before, version_after=versions_wanted[name],
        )
        host.record_change(change)
        changes.append(change)
    return changes


def require_runtime_binaries(host: Host, binaries: list[str]) -> None:
    """Check that each binary is on the host's PATH and runs `--version`; raise if not.

    A forced install (dependency checks off) may leave out a package that ships one of them,
    so the step checks at once instead of leaving the runtime broken until verify.
    """
    problems = []
    for binary in binaries:
        path = host.which(binary)
        if path is None:
            problems.append(f"{binary}: not found on PATH")
            continue
        result = host.run([path, "--version"], check=False, timeout=30)
        if not result.ok:
            output = (result.stderr or result.stdout).strip().splitlines()
            problems.append(f"{path} --version exited {result.exit_code}"
                            + (f": {output[0]}" if output else ""))
    if problems:
        raise GpurunError(
            f"after the forced install on host {host.name}, the nvidia runtime is incomplete:\n  "
            + "\n  ".join(problems)
            + "\n  next step: add the missing packages to the bundle (their dependency was "
              "skipped by allow_forced_install), then run the step again"
        )
