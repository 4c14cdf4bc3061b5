"""Ordinary logins with sudo rights on a sandbox host, for rehearsing runs as a non-root user."""

from __future__ import annotations

import dataclasses
import re
import subprocess

from gpurun.errors import SandboxError
from gpurun.sandbox.sandbox_host import SandboxHost

USER_NAME_PATTERN = re.compile(r"[a-z_][a-z0-9_-]{0,30}")

# Run as root on the host. $1 is the user, $2 "password" or "nopasswd".
_ADD_USER_SCRIPT = r"""
set -eu
user=$1
if ! id "$user" >/dev/null 2>&1; then
    # Debian has system groups named like common logins (operator), so such a login gets
    # the group users instead of a group of its own name.
    if getent group "$user" >/dev/null; then
        useradd --create-home --shell /bin/bash --no-user-group --gid users "$user"
    else
        useradd --create-home --shell /bin/bash "$user"
    fi
fi
home=$(getent passwd "$user" | cut -d: -f6)
group=$(id -gn "$user")
install -d -m 0700 -o "$user" -g "$group" "$home/.ssh"
install -m 0600 -o "$user" -g "$group" /root/.ssh/authorized_keys "$home/.ssh/authorized_keys"
if [ "$2" = password ]; then
    # chpasswd reads user:password from stdin, so the password is in no argv.
    chpasswd
    rule="$user ALL=(ALL:ALL) ALL"
else
    passwd --lock "$user" >/dev/null
    rule="$user ALL=(ALL:ALL) NOPASSWD: ALL"
fi
printf '%s\n' "$rule" > "/etc/sudoers.d/gpurun-$user"
chmod 0440 "/etc/sudoers.d/gpurun-$user"
visudo -c -f "/etc/sudoers.d/gpurun-$user" >/dev/null
"""


def add_sudo_user(host: SandboxHost, user: str, *, password: str | None = None) -> SandboxHost:
    """Create `user` on the host with gpurun's ssh key and sudo rights; return it as the login.

    With `password`, sudo requires it (the usual policy). Without, sudo requires none
    (NOPASSWD).
    """
    if not USER_NAME_PATTERN.fullmatch(user) or user == "root":
        raise SandboxError(
            f"invalid sandbox user name {user!r}: use lowercase letters, digits, '_' and '-', "
            f"starting with a letter or '_', and not root"
        )
    if password is not None and ("\n" in password or ":" in password or not password):
        raise SandboxError("invalid sandbox user password: it must be non-empty, one line, "
                           "and without ':' (chpasswd reads user:password lines)")

    mode = "password" if password is not None else "nopasswd"
    argv = host.ssh_argv(["sh", "-c", _ADD_USER_SCRIPT, "sh", user, mode])
    stdin = f"{user}:{password}\n" if password is not None else ""
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60,
                            check=False)
    if result.returncode != 0:
        raise SandboxError(
            f"could not create the sudo user {user} on sandbox host {host.name}: "
            f"{(result.stderr or result.stdout).strip()}\n"
            f"  next step: log in with 'gpurun sandbox ssh {host.name}' and check useradd"
        )
    return dataclasses.replace(host, user=user)
