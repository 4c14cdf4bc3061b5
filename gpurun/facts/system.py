"""Facts about the host's system: CPU, OS, init system, kernel, cgroups, firewall, SELinux, disk."""

from __future__ import annotations

import re
import shlex
import time
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
    iptables_provider: str  # e.g. "v1.8.9 (nf_tables) via /usr/sbin/iptables-nft"
    selinux: str
    free_kib: dict[str, int]
    clock_offset_s: float | None  # host clock minus control node clock


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


def iptables_provider(host: Host, path: str | None) -> str:
    """Return iptables' version, backend (nf_tables or legacy) and the program behind the link."""
    if path is None:
        return "not installed"
    version = host.run([path, "--version"], check=False)
    target = host.run(["readlink", "-f", path], check=False).stdout.strip()
    via = f" via {target}" if target and target != path else ""
    return f"{parse_iptables_version(version.stdout + version.stderr)}{via}"


def parse_iptables_version(output: str) -> str:
    """Return "v1.8.9 (nf_tables)" from `iptables --version`, or the first line as it is."""
    match = re.search(r"(v[0-9][0-9.]*)(\s*\([a-z_]+\))?", output)
    if match:
        return match.group(1) + (match.group(2) or "")
    lines = output.strip().splitlines()
    return lines[0] if lines else "version unknown"


def clock_offset(host: Host) -> float | None:
    """Return the host's clock minus this control node's, in seconds (None if unreadable).

    The host's time is compared with the middle of the round trip, so the error is at most
    half the round trip plus a second of `date +%s` resolution on hosts without %N.
    """
    before = time.time()
    result = host.run(["date", "+%s.%N"], check=False)
    after = time.time()
    text = result.stdout.strip().replace(".%N", "").replace(".N", "")
    try:
        host_time = float(text)
    except ValueError:
        return None
    return round(host_time - (before + after) / 2, 1)


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
    iptables = host.which("iptables")
    return SystemFacts(
        arch=host.run(["uname", "-m"]).stdout.strip(),
        kernel=host.run(["uname", "-r"]).stdout.strip(),
        os_id=os_release.get("ID", "unknown"),
        os_name=os_release.get("PRETTY_NAME", "unknown"),
        os_like=os_release.get("ID_LIKE", ""),
        package_format=detected if package_format == "auto" else package_format,
        init_system=init_system(host),
        cgroup_version=cgroup_version(host),
        iptables=iptables,
        iptables_provider=iptables_provider(host, iptables),
        selinux=selinux_mode(host),
        free_kib=free_space_kib(host, ["/var/lib/gpurun", "/var/lib/docker"]),
        clock_offset_s=clock_offset(host),
    )
