"""Facts about a Docker already on the host that gpurun did not install.

Operators' hosts often carry a packaged Docker (docker.io, docker-ce, moby-engine), a static one
unpacked by hand, a dockerd started by hand, or the docker snap. Installing gpurun's binaries
beside any of them risks a second daemon on the same socket and data root. So each is found
here and judged as a conflict, which the docker-binaries step must stop or overwrite, or as a
leftover, which stays installed while nothing of it runs or is overwritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from gpurun.facts import docker as docker_facts
from gpurun.facts import processes
from gpurun.facts import system as system_facts
from gpurun.facts import systemd as systemd_facts
from gpurun.facts.packages import has_rpm_database
from gpurun.host import Host
from gpurun.operations import background

# The units of a Docker that must not run beside gpurun's: a package's, or written by hand.
DOCKER_UNITS = ["docker.socket", "docker.service", "containerd.service"]
SYSTEM_UNIT_DIR = "/etc/systemd/system"
# The first line of every unit gpurun renders (gpurun/templates).
GPURUN_UNIT_MARK = "# Installed by gpurun"

# Places where a static dockerd is usually unpacked by hand.
STATIC_DOCKERD_PATHS = ["/usr/bin/dockerd", "/usr/local/bin/dockerd", "/usr/sbin/dockerd",
                        "/usr/local/sbin/dockerd", "/opt/docker/dockerd", "/opt/bin/dockerd"]

SNAP_NAME = "docker"


@dataclass(frozen=True)
class ForeignDaemon:
    """A running containerd or dockerd that gpurun did not start."""

    pid: int
    program: str
    exe: str
    unit: str | None  # the systemd unit whose cgroup contains it, if any

    @property
    def description(self) -> str:
        where = f" in {self.unit}" if self.unit else ""
        return f"{self.program} pid {self.pid} ({self.exe or 'unknown executable'}){where}"


@dataclass(frozen=True)
class ExistingDocker:
    """Every Docker on the host that gpurun did not install, and what of it is in the way."""

    packages: dict[str, str] = field(default_factory=dict)  # name -> version
    foreign_units: list[str] = field(default_factory=list)  # not gpurun's, enabled or active
    package_files: dict[str, str] = field(default_factory=dict)  # path in bin_dir -> package
    static_binaries: list[str] = field(default_factory=list)  # in bin_dir, gpurun's not
    static_elsewhere: list[str] = field(default_factory=list)  # outside bin_dir
    daemons: list[ForeignDaemon] = field(default_factory=list)  # not run by one of foreign_units
    snap: str | None = None  # the docker snap's version, when it is installed and enabled

    def conflicts(self) -> list[str]:
        """Return what the docker-binaries step would have to stop or overwrite."""
        found = []
        if self.foreign_units:
            found.append(f"Docker services that gpurun did not write, enabled or running: "
                         f"{', '.join(self.foreign_units)}")
        if self.package_files:
            owners = sorted(set(self.package_files.values()))
            found.append(f"files in bin_dir owned by {', '.join(owners)}: "
                         f"{', '.join(sorted(self.package_files))}")
        if self.static_binaries:
            found.append(f"a static Docker gpurun did not install: "
                         f"{', '.join(self.static_binaries)}")
        found += [f"running {daemon.description}" for daemon in self.daemons]
        if self.snap:
            found.append(f"the docker snap {self.snap}, enabled")
        return found

    def leftovers(self) -> list[str]:
        """Return the Docker installs that stay but are not in the way."""
        found = []
        if self.packages and not self.foreign_units and not self.package_files:
            names = ", ".join(f"{name} {version}" for name, version in self.packages.items())
            found.append(f"packages {names} stay installed with their services off; "
                         f"upgrading or removing them may change files gpurun installed")
        found += [f"another dockerd at {path}" for path in self.static_elsewhere]
        return found


def gather(host: Host, bin_dir: str, bundle_binaries: dict[str, str]) -> ExistingDocker:
    """Find every Docker on the host that gpurun did not install.

    `bundle_binaries` maps each binary name to the bundle's SHA-256: a file with that content
    is no conflict, since installing the bundle leaves it as it is.
    """
    installed_by_gpurun = gpurun_installed_files(host)
    uses_systemd = system_facts.init_system(host) == "systemd"
    units = foreign_units(host) if uses_systemd else []
    paths = [f"{bin_dir}/{name}" for name in bundle_binaries]

    present = {path: sha for path in paths if (sha := host.sha256(path)) is not None}
    owners = file_owners(host, list(present))
    package_files = {}
    static = []
    for path, sha in present.items():
        # The bundle's own content, or what gpurun installed there last, is no conflict.
        if sha == bundle_binaries[_name(path)] or installed_by_gpurun.get(path) == sha:
            continue
        if path in owners:
            package_files[path] = owners[path]
        else:
            static.append(path)

    elsewhere = []
    for path in STATIC_DOCKERD_PATHS:
        if path != f"{bin_dir}/dockerd" and host.exists(path):
            elsewhere.append(path)

    return ExistingDocker(
        packages=docker_facts.packaged_docker(host),
        foreign_units=units,
        package_files=package_files,
        static_binaries=static,
        static_elsewhere=elsewhere,
        daemons=foreign_daemons(host, units, uses_systemd),
        snap=snap_docker(host),
    )


def gpurun_installed_files(host: Host) -> dict[str, str]:
    """Return each path gpurun's journals on the host record, with its latest SHA-256."""
    script = 'cat /var/lib/gpurun/runs/*/changes.jsonl 2>/dev/null || true'
    result = host.run(["sh", "-c", script], check=False)
    return parse_journal_checksums(result.stdout)


def parse_journal_checksums(text: str) -> dict[str, str]:
    """Return path -> sha256_after from journal lines, the last entry of a path winning."""
    checksums: dict[str, str] = {}
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("sha256_after"):
            checksums[str(entry.get("path"))] = str(entry["sha256_after"])
    return checksums


def file_owners(host: Host, paths: list[str]) -> dict[str, str]:
    """Return path -> owning package for the paths that dpkg or rpm lists as installed."""
    owners: dict[str, str] = {}
    if not paths:
        return owners
    if host.which("dpkg-query"):
        result = host.run(["dpkg-query", "-S", *paths], check=False)
        owners.update(parse_dpkg_search(result.stdout))
    if has_rpm_database(host):
        # One path per call: rpm prints a line per owning package, so lines need not match args.
        for path in paths:
            result = host.run(["rpm", "-qf", "--qf", "%{NAME}\\n", path], check=False)
            if result.ok and result.stdout.strip():
                owners.setdefault(path, result.stdout.split()[0])
    return owners


def parse_dpkg_search(text: str) -> dict[str, str]:
    """Parse `dpkg-query -S PATH...` output ("pkg1, pkg2: /path" lines)."""
    owners = {}
    for line in text.splitlines():
        packages, separator, path = line.partition(": ")
        if separator and path.startswith("/") and not packages.startswith("diversion"):
            owners[path.strip()] = packages.split(",")[0].strip()
    return owners


def snap_docker(host: Host) -> str | None:
    """Return the version of the docker snap when it is installed and enabled."""
    if host.which("snap") is None:
        return None
    result = host.run(["snap", "list", SNAP_NAME], check=False)
    return parse_snap_list(result.stdout) if result.ok else None


def parse_snap_list(text: str) -> str | None:
    """Return the docker snap's version from `snap list docker`, or None when it is disabled."""
    for line in text.splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == SNAP_NAME:
            notes = fields[5] if len(fields) > 5 else ""
            return None if "disabled" in notes.split(",") else fields[1]
    return None


def unit_of_pid(host: Host, pid: int) -> str | None:
    """Return the systemd service or scope whose cgroup contains the process, if any."""
    text = host.read_text(f"/proc/{pid}/cgroup") or ""
    return parse_cgroup_unit(text)


def parse_cgroup_unit(text: str) -> str | None:
    """Return the last .service or .scope name in /proc/PID/cgroup paths."""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        for part in reversed(path.split("/")):
            if part.endswith((".service", ".scope")):
                return part
    return None


def foreign_units(host: Host) -> list[str]:
    """Return the Docker units that gpurun did not write and that are enabled or active."""
    found = []
    for name in DOCKER_UNITS:
        unit = systemd_facts.unit(host, name)
        if not unit.exists or not (unit.enabled or unit.active):
            continue
        if unit.fragment_path.startswith(SYSTEM_UNIT_DIR + "/"):
            first_line = (host.read_text(unit.fragment_path) or "").split("\n", 1)[0]
            if first_line.startswith(GPURUN_UNIT_MARK):
                continue
        found.append(name)
    return found


def foreign_daemons(host: Host, units: list[str], uses_systemd: bool) -> list[ForeignDaemon]:
    """Return the containerd and dockerd processes that neither gpurun nor `units` run."""
    managed = {}
    for daemon in background.DAEMONS:
        state = processes.pid_file(host, daemon.pid_file, daemon.name)
        if state.running and state.pid is not None:
            managed[state.pid] = daemon.name

    found = []
    for program in ("dockerd", "containerd"):
        for pid in processes.pids_of(host, program):
            if pid in managed:
                continue
            unit = unit_of_pid(host, pid) if uses_systemd else None
            if unit in units or (unit and _is_gpurun_unit(host, unit)):
                continue
            exe = (host.run(["readlink", f"/proc/{pid}/exe"], check=False).stdout.strip()
                   .removesuffix(processes.DELETED_SUFFIX))
            found.append(ForeignDaemon(pid, program, exe, unit))
    return found


def _is_gpurun_unit(host: Host, unit: str) -> bool:
    path = f"{SYSTEM_UNIT_DIR}/{unit}"
    return (host.read_text(path) or "").startswith(GPURUN_UNIT_MARK)


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]
