"""Facts about the host's system: CPU, OS, init system, kernel, cgroups, firewall, SELinux, disk."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from gpurun.host import Host

RPM_FAMILY = {"rhel", "centos", "fedora", "rocky", "almalinux", "ol", "amzn", "opencloudos",
              "anolis", "openEuler", "kylin", "sles", "opensuse-leap"}


@dataclass(frozen=True)
class SystemFacts:
    arch: str
    kernel: str
    os_id: str
    os_name: str
    os_like: str
    package_format: str
    init_system: str
    cgroup_version: int
    iptables: str | None
    selinux: str
    free_kib: dict[str, int]


def parse_os_release(text: str) -> dict[str, str]:
    """Parse /etc/os-release (shell-style KEY=value lines) into a mapping."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        parts = shlex.split(raw) if raw else [""]
        values[key] = parts[0] if parts else ""
    return values


def package_format_for(os_release: dict[str, str], has_dpkg: bool, has_rpm: bool) -> str:
    """Return 'deb' or 'rpm': the distribution family first, then which tool is present."""
    family = {os_release.get("ID", "")} | set(os_release.get("ID_LIKE", "").split())
    if family & {"debian", "ubuntu"} and has_dpkg:
        return "deb"
    if family & RPM_FAMILY and has_rpm:
        return "rpm"
    if has_dpkg:
        return "deb"
    return "rpm" if has_rpm else "unknown"


def init_system(host: Host) -> str:
    """Return 'systemd' when systemd is the running init (the sd_booted test), else 'none'."""
    return "systemd" if host.succeeds(["test", "-d", "/run/systemd/system"]) else "none"


def cgroup_version(host: Host) -> int:
    return 2 if host.exists("/sys/fs/cgroup/cgroup.controllers") else 1


def selinux_mode(host: Host) -> str:
    """Return Enforcing, Permissive, Disabled, or 'absent' where SELinux tools are missing."""
    if host.which("getenforce") is None:
        return "absent"
    result = host.run(["getenforce"], check=False)
    return result.stdout.strip() or "unknown"


def free_space_kib(host: Host, paths: list[str]) -> dict[str, int]:
    """Return the free KiB of the filesystem holding each path (or its nearest parent)."""
    free = {}
    for path in paths:
        script = 'p="$1"; while [ ! -e "$p" ]; do p=$(dirname "$p"); done; df -Pk "$p" | tail -n 1'
        result = host.run(["sh", "-c", script, "sh", path], check=False)
        fields = result.stdout.split()
        if result.ok and len(fields) >= 4 and fields[3].isdigit():
            free[path] = int(fields[3])
    return free


def gather(host: Host, package_format: str = "auto") -> SystemFacts:
    """Probe the host's system facts."""
    os_release = parse_os_release(host.read_text("/etc/os-release") or "")
    detected = package_format_for(
        os_release, host.which("dpkg-query") is not None, host.which("rpm") is not None
    )
    return SystemFacts(
        arch=host.run(["uname", "-m"]).stdout.strip(),
        kernel=host.run(["uname", "-r"]).stdout.strip(),
        os_id=os_release.get("ID", "unknown"),
        os_name=os_release.get("PRETTY_NAME", "unknown"),
        os_like=os_release.get("ID_LIKE", ""),
        package_format=detected if package_format == "auto" else package_format,
        init_system=init_system(host),
        cgroup_version=cgroup_version(host),
        iptables=host.which("iptables"),
        selinux=selinux_mode(host),
        free_kib=free_space_kib(host, ["/var/lib/gpurun", "/var/lib/docker"]),
    )
