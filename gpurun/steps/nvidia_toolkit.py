"""nvidia-toolkit: install the bundle's toolkit packages in dependency order, one transaction."""

from __future__ import annotations

from pathlib import Path

from gpurun.bundle.manifest import Manifest
from gpurun.errors import BundleError
from gpurun.facts import packages as package_facts
from gpurun.facts import system as system_facts
from gpurun.operations import packages
from gpurun.operations.bundle_files import ensure_uploaded
from gpurun.plan import Action, Check, check, unchanged
from gpurun.step import Step

# The toolkit binaries the nvidia runtime needs on every toolkit version this supports.
RUNTIME_BINARIES = ["nvidia-container-runtime", "nvidia-ctk", "nvidia-container-cli"]


def gather(step: Step, manifest: Manifest, package_format: str = "auto") -> dict[str, str]:
    """Read the host's package format and the installed versions of the toolkit packages."""
    host = step.host
    detected = system_facts.gather(host, package_format).package_format
    if detected != manifest.package_format:
        raise BundleError(
            f"host {host.name} installs {detected} packages but the bundle holds "
            f"{manifest.package_format} packages\n  next step: build a {detected} bundle, or set "
            f"package_format if the detection is wrong"
        )
    names = [package.name for package in manifest.toolkit_packages()]
    installed = package_facts.installed_versions(host, names, detected)
    facts = {"package format": detected}
    facts.update({name: installed.get(name, "not installed") for name in names})
    step.show_facts(facts)
    return installed


def plan(
    step: Step,
    manifest: Manifest,
    bundle_dir: str,
    installed: dict[str, str],
    *,
    allow_forced_install: bool = False,
) -> list[Action]:
    """Return one action that installs every package not at the bundle's version, or none."""
    host = step.host
    bundle_packages = manifest.toolkit_packages()
    wanted = {package.name: package.version for package in bundle_packages}
    stale = [p for p in bundle_packages if installed.get(p.name) != p.version]
    if not stale:
        return [unchanged(f"package {name}", f"{version} installed")
                for name, version in wanted.items()]

    def install() -> None:
        uploaded = [ensure_uploaded(host, Path(bundle_dir), p.path, p.sha256)
                    for p in bundle_packages]
        for path in uploaded:
            packages.reject_protected_files(host, path, manifest.package_format)
        packages.install(host, uploaded, [p.name for p in bundle_packages], installed, wanted,
                         manifest.package_format, allow_forced_install)
        if allow_forced_install:
            packages.require_runtime_binaries(host, RUNTIME_BINARIES)

    # All packages go into one transaction so dpkg or rpm orders them and checks the set.
    names = ", ".join(f"{p.name} {p.version}" for p in stale)
    reason = "; ".join(f"{p.name} is {installed.get(p.name, 'not installed')}" for p in stale)
    change = f"install {len(bundle_packages)} packages in one transaction ({names})"
    if allow_forced_install:
        change += " with dependency checks forced off"
    return [Action("toolkit packages", change, reason, install)]


def verify(step: Step, manifest: Manifest) -> list[Check]:
    """Check each package is at the bundle's version and each runtime binary answers."""
    host = step.host
    names = [package.name for package in manifest.toolkit_packages()]
    installed = package_facts.installed_versions(host, names, manifest.package_format)
    checks = [check(f"package {p.name}", installed.get(p.name) == p.version,
                    f"installed {installed.get(p.name, 'none')}, bundle {p.version}")
              for p in manifest.toolkit_packages()]
    for binary in RUNTIME_BINARIES:
        path = host.which(binary)
        if path is None:
            checks.append(check(f"{binary} runs", False, "not found on PATH"))
            continue
        result = host.run([path, "--version"], check=False)
        output = (result.stdout + result.stderr).strip().splitlines()
        checks.append(check(f"{binary} runs", result.ok, output[0] if output else path))
    return checks
