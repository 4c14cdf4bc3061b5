"""preflight: gather the host's facts and judge whether the bundle can be installed on it."""

from __future__ import annotations

from gpurun import daemon_config
from gpurun.bundle.archs import normalize_arch
from gpurun.bundle.manifest import Manifest
from gpurun.errors import BundleError, ConfigError, PreflightError
from gpurun.facts import docker as docker_facts
from gpurun.facts import nvidia as nvidia_facts
from gpurun.facts import system as system_facts
from gpurun.facts import systemd as systemd_facts
from gpurun.step import Step, show
from gpurun import display
from gpurun.steps.findings import Finding, blocking, ok, warning

# libnvidia-container supports cgroup v2 from version 1.8.0 on.
CGROUP_V2_MIN_TOOLKIT = (1, 8, 0)
KIB_PER_MIB = 1024


def gather(step: Step, package_format: str = "auto") -> system_facts.SystemFacts:
    facts = system_facts.gather(step.host, package_format)
    step.show_facts({key: value for key, value in vars(facts).items()}, "System facts")
    return facts


def judge(step: Step, facts: system_facts.SystemFacts, manifest: Manifest) -> list[Finding]:
    """Return every finding about this host and bundle, and show them as a table."""
    host = step.host
    findings = [
        _arch(facts, manifest),
        _package_format(facts, manifest),
        _init_system(facts),
        _cgroups(facts, manifest),
        _selinux(facts),
        _disk(facts, manifest),
        _driver(nvidia_facts.gather(host)),
        *_existing_docker(step),
    ]
    config, command_line, config_findings = _docker_config(step)
    findings += config_findings
    findings.append(_iptables(facts, config, command_line))

    step.facts["findings"] = [vars(f) for f in findings]
    rows = [(f.level, f.check, f.detail, f.next_step) for f in findings]
    show(display.table("Findings", ["level", "check", "detail", "next step"], rows))
    return findings


def require_no_blocking(step: Step, findings: list[Finding]) -> None:
    """Stop the run on this host when any finding blocks, before anything is changed."""
    blockers = [f for f in findings if f.level == "blocking"]
    if blockers:
        lines = "\n".join(f"  {f.check}: {f.detail}\n    next step: {f.next_step}" for f in blockers)
        raise PreflightError(
            f"host {step.host.name} is not ready, nothing was changed:\n{lines}"
        )


def _arch(facts: system_facts.SystemFacts, manifest: Manifest) -> Finding:
    try:
        host_arch = normalize_arch(facts.arch)
    except BundleError:
        return blocking("CPU architecture", f"unsupported: {facts.arch}",
                        "gpurun supports x86_64 and aarch64 hosts")
    if host_arch != normalize_arch(manifest.arch):
        return blocking("CPU architecture",
                        f"host is {facts.arch}, bundle is for {manifest.arch}",
                        f"build a bundle for {host_arch}")
    return ok("CPU architecture", f"{facts.arch} matches the bundle")


def _package_format(facts: system_facts.SystemFacts, manifest: Manifest) -> Finding:
    if facts.package_format != manifest.package_format:
        return blocking("package format",
                        f"host uses {facts.package_format}, bundle has {manifest.package_format}",
                        f"build a {facts.package_format} bundle, or set package_format")
    return ok("package format", f"{facts.package_format} ({facts.os_name})")


def _init_system(facts: system_facts.SystemFacts) -> Finding:
    if facts.init_system != "systemd":
        return warning("init system",
                       "systemd is not running: containerd and dockerd will run as background "
                       "processes that gpurun starts, with pid files in /run/gpurun",
                       "nothing starts them after a reboot; make the host's entry point run "
                       "the docker-service runbook again")
    return ok("init system", "systemd")


def _cgroups(facts: system_facts.SystemFacts, manifest: Manifest) -> Finding:
    version = _version_tuple(manifest.toolkit_version)
    if facts.cgroup_version == 2 and version < CGROUP_V2_MIN_TOOLKIT:
        return blocking("cgroups", f"cgroup v2 with libnvidia-container {manifest.toolkit_version}",
                        "use toolkit 1.8.0 or newer, which supports cgroup v2")
    return ok("cgroups", f"cgroup v{facts.cgroup_version}")


def _selinux(facts: system_facts.SystemFacts) -> Finding:
    if facts.selinux == "Enforcing":
        return warning("SELinux", "enforcing: GPU containers may be denied the device nodes",
                       "GPU containers may need `--security-opt label=disable`, or a policy for "
                       "the NVIDIA devices; gpurun never turns SELinux off")
    return ok("SELinux", facts.selinux)


def _disk(facts: system_facts.SystemFacts, manifest: Manifest) -> Finding:
    # The bundle is uploaded and the tarball unpacked beside it: about three times its size.
    needed_kib = 3 * sum(f.size for f in manifest.files) // 1024
    free = facts.free_kib.get("/var/lib/gpurun")
    if free is None:
        return warning("disk space", "could not read free space of /var/lib/gpurun",
                       "check `df -h /var/lib` on the host")
    if free < needed_kib:
        return blocking("disk space",
                        f"{free // KIB_PER_MIB} MiB free for /var/lib/gpurun, "
                        f"{needed_kib // KIB_PER_MIB} MiB needed",
                        "free space under /var/lib")
    return ok("disk space", f"{free // KIB_PER_MIB} MiB free, {needed_kib // KIB_PER_MIB} MiB needed")


def _driver(driver: nvidia_facts.DriverFacts) -> Finding:
    if not driver.driver_loaded:
        return warning("NVIDIA driver", driver.summary,
                       "Docker and the toolkit install anyway; containers get GPUs only after "
                       "the driver is installed and loaded")
    return ok("NVIDIA driver", driver.summary)


def _existing_docker(step: Step) -> list[Finding]:
    packaged = docker_facts.packaged_docker(step.host)
    if packaged:
        names = ", ".join(f"{k} {v}" for k, v in packaged.items())
        return [blocking("existing Docker", f"packaged Docker installed: {names}",
                         "remove the package first; replacing it is not supported yet")]
    pids = docker_facts.dockerd_pids(step.host)
    detail = f"dockerd running (pid {', '.join(map(str, pids))})" if pids else "none running"
    return [ok("existing Docker", detail)]


def _docker_config(step: Step):
    """Return daemon.json, dockerd's command line and the findings about the two together."""
    host = step.host
    commands = systemd_facts.exec_start(host, "docker.service")
    command_line = daemon_config.parse_dockerd_argv(commands[-1] if commands else ["dockerd"])
    path = daemon_config.config_file_path(command_line)
    try:
        config = daemon_config.parse_daemon_json(host.read_text(path), path, host.name)
    except ConfigError as error:
        return {}, command_line, [blocking("daemon.json", str(error).splitlines()[0],
                                           f"fix {path} by hand; gpurun never rewrites a file "
                                           f"it cannot parse")]
    findings = []
    for key in daemon_config.conflicts(config, command_line):
        findings.append(blocking(
            "dockerd option set twice",
            f"{key} is in {path} and on the docker.service command line "
            f"({' '.join(command_line.argv)})",
            "remove one of the two; dockerd refuses to start with both"))
    defined = set(config.get("runtimes", {})) | set(command_line.runtimes()) | {"runc"}
    default = config.get("default-runtime") or command_line.value("default-runtime")
    if default and default not in defined:
        findings.append(warning(
            "default runtime", f"default-runtime {default!r} is not a defined runtime",
            "the runtime step defines it; until then dockerd rejects the configuration"))
    if not findings:
        findings.append(ok("dockerd configuration", f"{path}: {len(config)} key(s), no conflicts"))
    return config, command_line, findings


def _iptables(facts, config, command_line) -> Finding:
    disabled = config.get("iptables") is False or command_line.value("iptables") == "false"
    if facts.iptables is None and not disabled:
        return blocking("iptables", "iptables not found on PATH",
                        "install iptables; dockerd needs it for its default bridge network "
                        "(or set \"iptables\": false in daemon.json if you manage the firewall)")
    return ok("iptables", facts.iptables or "not needed: iptables disabled for dockerd")


def _version_tuple(version: str) -> tuple[int, ...]:
    numbers = []
    for part in version.split("-")[0].split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)
