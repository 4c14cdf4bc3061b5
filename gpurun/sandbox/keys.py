"""The ssh keys of the sandbox: gpurun's client key, each host's host key, and known_hosts."""

from __future__ import annotations

from pathlib import Path

from gpurun.sandbox.commands import run_checked

CLIENT_KEY_COMMENT = "gpurun-sandbox"
HOST_KEY_PATH = "etc/ssh/ssh_host_ed25519_key"


def ensure_client_key(key_file: Path) -> Path:
    """Make gpurun's ed25519 client key at `key_file` unless it exists, and return its path.

    Call it under the state lock, so that two processes never write the key at once.
    """
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        _generate_key(key_file, CLIENT_KEY_COMMENT, host=None)
    return key_file


def _generate_key(private_key: Path, comment: str, *, host: str | None) -> None:
    # An empty passphrase, because the tests and the demo log in unattended.
    run_checked(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(private_key)],
        host=host,
        next_step="install the ssh client (apt-get install openssh-client)",
    )


def make_host_key(root: Path, name: str) -> str:
    """Write a fresh ed25519 host key into the host's root folder and return its public line."""
    private_key = root / HOST_KEY_PATH
    for stale in (private_key, private_key.with_suffix(".pub")):
        stale.unlink(missing_ok=True)

    _generate_key(private_key, f"root@{name}", host=name)
    return private_key.with_suffix(".pub").read_text().strip()


def authorize_client_key(root: Path, client_key: Path) -> None:
    """Let the client key log in as root on the host whose root folder is `root`."""
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ssh_dir.chmod(0o700)

    authorized_keys = ssh_dir / "authorized_keys"
    authorized_keys.write_text(client_key.with_suffix(".pub").read_text())
    authorized_keys.chmod(0o600)


def _read_lines(known_hosts: Path) -> list[str]:
    try:
        return known_hosts.read_text().splitlines()
    except FileNotFoundError:
        return []


def _write_lines(known_hosts: Path, lines: list[str]) -> None:
    # Written to a new file and renamed, so a running ssh never reads half a file.
    partial = known_hosts.with_name(known_hosts.name + ".partial")
    partial.write_text("".join(line + "\n" for line in lines))
    partial.replace(known_hosts)


def add_known_host(known_hosts: Path, address: str, host_public_key: str) -> None:
    """Record `address` with its host key, replacing any line an earlier host left for it."""
    key_type, key_data = host_public_key.split()[:2]
    lines = [line for line in _read_lines(known_hosts) if line.split(" ", 1)[0] != address]
    lines.append(f"{address} {key_type} {key_data}")
    _write_lines(known_hosts, lines)


def remove_known_host(known_hosts: Path, address: str) -> None:
    """Remove the lines for `address`, if the file has any."""
    lines = _read_lines(known_hosts)
    remaining = [line for line in lines if line.split(" ", 1)[0] != address]
    if remaining != lines:
        _write_lines(known_hosts, remaining)
