"""The recipe of the sandbox base image: the Debian suite, its packages and gpurun's own files.

Any change here changes `recipe_digest()`, so cached base images built from an older recipe are
rebuilt on the next `up`.
"""

from __future__ import annotations

import hashlib
import json

SUITE = "bookworm"

PACKAGES = (
    # A booted, reachable host.
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "procps",
    "sudo",
    "kmod",
    # The no-systemd host runs tini as PID 1 in front of sshd.
    "tini",
    # Debian's dynamically linked dockerd 20.10 (the binaries gpurun installs) needs these
    # libraries, iptables for its default bridge network, and xz for compressed image layers.
    "iptables",
    "libdevmapper1.02.1",
    "libseccomp2",
    "libsystemd0",
    "xz-utils",
    # A host created with package_tool="rpm" installs the toolkit with rpm, standing in for an
    # RPM distribution, which cannot be downloaded here.
    "rpm",
)

SSHD_CONFIG_PATH = "etc/ssh/sshd_config.d/gpurun-sandbox.conf"
SSHD_CONFIG = """\
# gpurun sandbox: root logs in with a key only, and each host has its own ed25519 host key.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""

CGROUP_REMOUNT_SCRIPT_PATH = "usr/local/sbin/gpurun-cgroup-remount"
CGROUP_REMOUNT_SCRIPT = """\
#!/bin/sh
# systemd-nspawn mounts the cgroup v1 controllers read-only, so runc fails with
# "read-only file system". Mount each read-only controller afresh, read-write.
# On a cgroup v2 host nothing matches and nothing changes.
set -eu

# Read the whole list before changing any mount.
read_only_mounts=$(awk '$3 == "cgroup" && $4 ~ /^ro(,|$)/ { print $2 }' /proc/self/mounts)

for mount_point in $read_only_mounts; do
    controllers=$(basename "$mount_point")
    case "$controllers" in
        systemd|unified) continue ;;
    esac
    umount "$mount_point"
    mount -t cgroup -o "$controllers" cgroup "$mount_point"
done
"""

CGROUP_REMOUNT_UNIT_PATH = "etc/systemd/system/gpurun-cgroup-remount.service"
CGROUP_REMOUNT_UNIT = """\
[Unit]
Description=Mount the cgroup v1 controllers read-write for container runtimes
DefaultDependencies=no
After=local-fs.target
Before=containerd.service docker.service sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/gpurun-cgroup-remount

[Install]
WantedBy=sysinit.target
"""
CGROUP_REMOUNT_UNIT_LINK = "etc/systemd/system/sysinit.target.wants/gpurun-cgroup-remount.service"

SSHD_ONLY_INIT_PATH = "usr/local/sbin/gpurun-sshd-only"
SSHD_ONLY_INIT = """\
#!/bin/sh
# The entry point of a sandbox host without systemd, run by tini as PID 1.
set -eu
/usr/local/sbin/gpurun-cgroup-remount
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e
"""

# Files of the debootstrap result that must not be shared by every host.
PER_HOST_FILES_TO_REMOVE = (
    "etc/ssh/ssh_host_*",
    "etc/hostname",
    "etc/resolv.conf",
)


def recipe_digest() -> str:
    """Return a SHA-256 over everything above, the version that the base image's stamp records."""
    recipe = {
        "suite": SUITE,
        "packages": PACKAGES,
        "files": {
            SSHD_CONFIG_PATH: SSHD_CONFIG,
            CGROUP_REMOUNT_SCRIPT_PATH: CGROUP_REMOUNT_SCRIPT,
            CGROUP_REMOUNT_UNIT_PATH: CGROUP_REMOUNT_UNIT,
            CGROUP_REMOUNT_UNIT_LINK: "link",
            SSHD_ONLY_INIT_PATH: SSHD_ONLY_INIT,
        },
        "removed": PER_HOST_FILES_TO_REMOVE,
    }
    encoded = json.dumps(recipe, sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()
