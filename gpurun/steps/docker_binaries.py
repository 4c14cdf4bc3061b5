"""docker-binaries: upload the static tarball, unpack it safely, install each binary."""

from __future__ import annotations

from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

from gpurun.bundle.manifest import Manifest
from gpurun.facts import docker as docker_facts
from gpurun.facts import existing_docker as existing_facts
from gpurun.host import Host
from gpurun.host.host import RUNS_DIR
from gpurun.operations import binaries
from gpurun.operations.bundle_files import ensure_uploaded
from gpurun.plan import Action, Check, check, unchanged
from gpurun.step import Step
from gpurun.steps import existing_docker
from gpurun.steps.common import checked_bin_dir, require_matching_arch


def gather(step: Step, manifest: Manifest, bin_dir: str) -> dict[str, docker_facts.BinaryFacts]:
    """Read the installed binaries and any other Docker on the host."""
    host = step.host
    installed = docker_facts.installed_binaries(host, checked_bin_dir(bin_dir))
    existing = existing_facts.gather(host, checked_bin_dir(bin_dir), manifest.docker_binaries)
    leftovers = _leftover_staging(host)
    facts: dict[str, Any] = {
        "arch": host.run(["uname", "-m"]).stdout.strip(),
        "bundle docker version": manifest.docker_version,
        "packaged docker": existing.packages or "none",
        "Docker in the way": existing.conflicts() or "none",
        "other Docker left in place": existing.leftovers() or "none",
        "unpacked tarballs left by earlier runs": ", ".join(leftovers) or "none",
    }
    for name, found in installed.items():
        wanted = manifest.docker_binaries.get(name)
        state = "absent" if found.sha256 is None else (
            "as in bundle" if found.sha256 == wanted else "differs from bundle")
        if found.link_target is not None:
            state += f", symbolic link to {found.link_target}"
        facts[found.path] = f"{state}, mode {found.mode or '-'}, owner {found.owner or '-'}"
    step.show_facts(facts)
    step.facts["existing_docker"] = existing
    step.facts["leftover_staging"] = leftovers
    return installed


def plan(
    step: Step,
    manifest: Manifest,
    bundle_dir: str,
    bin_dir: str,
    installed: dict[str, docker_facts.BinaryFacts],
    *,
    replace_existing: bool = False,
) -> list[Action]:
    """Return one action per binary: install, fix its mode, or nothing with the reason."""
    host = step.host
    bin_dir = checked_bin_dir(bin_dir)
    require_matching_arch(host, step.facts["arch"], manifest)
    # Any Docker gpurun did not install is stopped first (with consent), so the binaries
    # never replace those of a running daemon that gpurun does not manage.
    existing = step.facts.get("existing_docker") or existing_facts.ExistingDocker()
    actions = existing_docker.actions(host, existing, replace_existing)

    staged = _stager(host, manifest, Path(bundle_dir))
    installs = []
    for name, found in installed.items():
        wanted = manifest.docker_binaries[name]
        if found.sha256 != wanted or found.link_target is not None:
            reason = "not installed" if found.sha256 is None else "content differs from bundle"
            if found.link_target is not None:
                # Replacing the link itself leaves the file it points to (a package's) alone.
                reason = f"a symbolic link to {found.link_target}, not the binary itself"
            installs.append(Action(
                target=found.path,
                change=f"install {name} from docker-{manifest.docker_version}.tgz",
                reason=reason,
                apply=lambda name=name, path=found.path: binaries.install_binary(
                    host, staged() / name, path),
            ))
        elif (found.mode, found.owner) != (binaries.BINARY_MODE, binaries.ROOT_OWNER):
            installs.append(Action(
                target=found.path,
                change="set mode 0755, owner root",
                reason=f"mode {found.mode}, owner {found.owner}",
                apply=lambda path=found.path: binaries.fix_mode(host, path),
            ))
        else:
            installs.append(unchanged(found.path, "installed with the bundle's SHA-256, 0755 root"))

    if any(action.needed for action in installs):
        staging = str(host.run_dir / "staging")
        installs.append(Action(staging, "remove the unpacked tarball", "binaries installed",
                               lambda: host.run(["rm", "-rf", "--", staging])))
    # An interrupted run leaves its unpacked tarball (about 200 MB) behind.
    for leftover in step.facts.get("leftover_staging", []):
        installs.append(Action(leftover, "remove the unpacked tarball",
                               "left behind by an interrupted run",
                               lambda leftover=leftover: host.run(["rm", "-rf", "--", leftover])))
    return actions + installs


def _leftover_staging(host: Host) -> list[str]:
    """Return the staging folders of earlier runs on the host (each run removes its own)."""
    script = f'for d in {RUNS_DIR}/*/staging; do [ -d "$d" ] && echo "$d"; done; true'
    folders = host.run(["sh", "-c", script]).stdout.split()
    return [folder for folder in folders if folder != str(host.run_dir / "staging")]


def _stager(host: Host, manifest: Manifest, bundle_dir: Path):
    """Return a function that uploads and unpacks the tarball the first time it is called."""
    tarball = manifest.docker_tarball()

    @cache
    def staged() -> PurePosixPath:
        remote = ensure_uploaded(host, bundle_dir, tarball.path, tarball.sha256)
        return binaries.unpack(host, remote, sorted(manifest.docker_binaries))

    return staged


def verify(step: Step, manifest: Manifest, bin_dir: str) -> list[Check]:
    """Check each binary's checksum, mode and owner, and that it runs."""
    host = step.host
    bin_dir = checked_bin_dir(bin_dir)
    checks = []
    for name, wanted in manifest.docker_binaries.items():
        found = docker_facts.binary(host, f"{bin_dir}/{name}")
        checks.append(check(f"{name} checksum", found.sha256 == wanted,
                            f"{found.path} sha256 {found.sha256}"))
        checks.append(check(f"{name} mode", (found.mode, found.owner) == ("0755", "0:0"),
                            f"mode {found.mode}, owner {found.owner}"))
        checks.append(_runs(host, name, found.path))
    return checks


def _runs(host: Host, name: str, path: str) -> Check:
    """Check that a binary executes on this host (right arch, libraries present)."""
    argv = [path, *binaries.VERSION_ARGS.get(name, ["--version"])]
    result = host.run(argv, check=False, timeout=30)
    output = (result.stdout + result.stderr).strip()
    first = output.splitlines()[0] if output else f"exit code {result.exit_code}"
    # docker-proxy has no version flag: printing its usage shows that it runs.
    runs = result.ok or (name == "docker-proxy" and "Usage of" in output)
    return check(f"{name} runs", runs, first)
