"""Install Docker's static binaries: unpack safely, then replace each file atomically."""

from __future__ import annotations

from pathlib import PurePosixPath

from gpurun.errors import BundleError
from gpurun.host import Host
from gpurun.host.changes import FileChange

BINARY_MODE = "0755"
ROOT_OWNER = "0:0"

# The flag that makes each binary print its version (docker-proxy has none: it prints usage).
VERSION_ARGS = {"containerd-shim-runc-v2": ["-v"], "docker-proxy": ["-h"]}


def unpack(host: Host, tarball: PurePosixPath, expected: list[str]) -> PurePosixPath:
    """Unpack the named binaries into this run's staging folder and return its docker/ folder.

    Only the members docker/<name> are unpacked, so no other member lands anywhere, and tar
    drops a leading / and refuses `..` in their names. Each must then be a plain file: a link
    could point at any file on the host, which install would copy into place.
    """
    staging = host.run_dir / "staging"
    members = [f"docker/{name}" for name in expected]
    host.run(["rm", "-rf", str(staging)])
    host.run(["mkdir", "-p", str(staging)])
    unpacked = host.run(["tar", "-xzf", str(tarball), "-C", str(staging), "--no-same-owner",
                         "--no-same-permissions", "--", *members], check=False)
    if not unpacked.ok:
        reason = (unpacked.stderr.strip().splitlines() or [f"exit code {unpacked.exit_code}"])
        raise BundleError(
            f"failed to unpack {tarball} on host {host.name}: {reason[0]}\n"
            f"  next step: rebuild the bundle from the official tarball; the tarball must hold "
            f"{', '.join(members)}"
        )

    kinds = host.run(["stat", "-c", "%F|%n", "--", *(str(staging / m) for m in members)])
    for line in kinds.stdout.splitlines():
        kind, _, path = line.partition("|")
        if kind != "regular file":
            raise BundleError(
                f"unsafe member in {tarball} on host {host.name}: "
                f"{PurePosixPath(path).relative_to(staging)} is a {kind}, not a plain file\n"
                f"  next step: rebuild the bundle from the official tarball"
            )
    return staging / "docker"


def version_of(host: Host, path: str) -> str | None:
    name = PurePosixPath(path).name
    if name == "docker-proxy":
        return None
    result = host.run([path, *VERSION_ARGS.get(name, ["--version"])], check=False, timeout=30)
    lines = [line.strip() for line in (result.stdout or result.stderr).splitlines()]
    meaningful = [line for line in lines if line and not line.endswith(":")]
    return meaningful[0] if result.ok and meaningful else None


def install_binary(host: Host, source: PurePosixPath, target: str) -> FileChange:
    """Install source as target, mode 0755 and root-owned, after backing up the old file."""
    target_path = PurePosixPath(target)
    before_sha = host.sha256(target_path)
    before_version = version_of(host, target) if before_sha else None
    backup = host.backup(target_path)

    temporary = target_path.with_name(f".{target_path.name}.gpurun-new")
    host.run(["mkdir", "-p", "--", str(target_path.parent)])
    host.run(["install", "-m", BINARY_MODE, "-o", "root", "-g", "root", "--",
              str(source), str(temporary)])
    host.run(["mv", "-f", "--", str(temporary), str(target_path)])

    change = FileChange(
        path=target,
        action="modified" if before_sha else "created",
        sha256_before=before_sha,
        sha256_after=host.sha256(target_path),
        backup=backup,
        version_before=before_version,
        version_after=version_of(host, target),
    )
    host.record_change(change)
    return change


def fix_mode(host: Host, target: str) -> FileChange:
    """Make an installed binary 0755 and root-owned, keeping its content."""
    backup = host.backup(target)
    host.run(["chown", ROOT_OWNER, "--", target])
    host.run(["chmod", BINARY_MODE, "--", target])
    sha = host.sha256(target)
    change = FileChange(path=target, action="mode", sha256_before=sha, sha256_after=sha,
                        backup=backup)
    host.record_change(change)
    return change
