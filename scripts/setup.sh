#!/usr/bin/env bash
# Install what gpurun's demo and tests need on a fresh Debian 12 machine, then gpurun itself
# into .venv. Needs root: it installs Debian packages. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(
    debootstrap systemd-container iproute2 iptables openssh-client  # sandbox hosts
    busybox-static dpkg-dev rpm                                     # demo bundle
    skopeo umoci                                                    # its test image's checks
    gpgv gnupg createrepo-c                                         # bundle build and its tests
    python3-venv                                                    # the virtual environment
    chromium                                                        # the report's browser test
)

if [ "$(id -u)" -ne 0 ]; then
    echo "error: run as root: sandbox hosts need debootstrap, network namespaces and" >&2
    echo "       systemd-nspawn, and this script installs Debian packages" >&2
    exit 1
fi

missing=()
for package in "${debian_packages[@]}"; do
    dpkg-query -W -f '${db:Status-Status}' "$package" 2>/dev/null | grep -qx installed \
        || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Each sandbox host runs its own systemd, which takes several inotify instances; the kernel's
# default of 128 per user is used up by about a dozen hosts, and the next one fails to boot.
if [ "$(sysctl -n fs.inotify.max_user_instances)" -lt 8192 ]; then
    sysctl -q -w fs.inotify.max_user_instances=8192
fi
if [ "$(sysctl -n fs.inotify.max_user_watches)" -lt 1048576 ]; then
    sysctl -q -w fs.inotify.max_user_watches=1048576
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
echo "gpurun installed in $(pwd)/.venv"
