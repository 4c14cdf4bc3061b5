"""preflight: gather the host's facts and judge whether the bundle can be installed on it."""

from __future__ import annotations

from pathlib import Path

from gpurun import display
from gpurun.bundle.archs import normalize_arch
from gpurun.bundle.manifest import Manifest, load_manifest
from gpurun.errors import BundleError, PreflightError
from gpurun.facts import existing_docker as existing_facts
from gpurun.facts import kernel as kernel_facts
from gpurun.facts import nvidia as nvidia_facts
from gpurun.facts import system as system_facts
from gpurun.operations.bundle_files import HOST_BUNDLE_DIR
from gpurun.step import Step, show
from gpurun.steps import existing_docker, host_findings
from gpurun.steps.dockerd_findings import read_dockerd_config
from gpurun.steps.findings import Finding, blocking, ok, warning
from gpurun.steps.runtime import rootless_refusal


def gather(step: Step, package_format: str = "auto") -> system_facts.SystemFacts:
    facts = system_facts.gather(step.host, package_format)
    step.show_facts({key: value for key, value in vars(facts).items()}, "System facts")
    return facts


def judge(step: Step, facts: system_facts.SystemFacts, manifest: Manifest,
          *, rootless_user: str = "") -> list[Finding]:
    """Return every finding about this host and bundle, and show them as a table."""
    host = step.host
    kernel = kernel_facts.gather(host)
    driver = nvidia_facts.gather(host)
    dockerd = read_dockerd_config(host)
    bundle_dir = str(HOST_BUNDLE_DIR.parent)
    free_kib = system_facts.free_space_kib(host, [bundle_dir, dockerd.data_root])
    step.show_facts({
        "kernel modules": kernel.modules,
        "module sources": kernel.sources,
        "NVIDIA driver": driver.state,
        "nvidia-smi output": driver.smi_output or "none",
        "dockerd config file": dockerd.path,
        "dockerd command line": " ".join(dockerd.command_line.argv),
        "dockerd data root": dockerd.data_root,
    }, "Kernel, driver and dockerd facts")

    findings = [
        _arch(facts, manifest),
        _package_format(facts, manifest),
        _init_system(facts),
        host_findings.kernel_version(kernel),
        *host_findings.kernel_modules(kernel, facts.iptables_provider, manifest.docker_version,
                                      dockerd.iptables_disabled),
        host_findings.cgroups(facts.cgroup_version, manifest),
        host_findings.iptables(facts.iptables, facts.iptables_provider,
                               dockerd.iptables_disabled),
        host_findings.selinux(facts.selinux),
        host_findings.driver(driver),
        *host_findings.disk(free_kib, bundle_dir, dockerd.data_root, manifest),
        host_findings.clock(facts.clock_offset_s),
        *_existing_docker(step),
        *dockerd.findings,
    ]
    if rootless_user:
        findings.append(blocking("rootless Docker", rootless_refusal(host.name, rootless_user)
                                 .split("\n")[0], "leave rootless_user empty"))

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


def _existing_docker(step: Step) -> list[Finding]:
    """Return the findings about a Docker gpurun did not install: packaged, static, running, snap."""
    bin_dir = step.parameters.get("bin_dir") or "/usr/bin"
    bundle_dir = step.parameters.get("bundle_dir") or ""
    bundle_binaries = load_manifest(Path(bundle_dir)).docker_binaries if bundle_dir else {}
    existing = existing_facts.gather(step.host, bin_dir.rstrip("/") or "/", bundle_binaries)
    return existing_docker.findings(existing, bool(step.parameters.get("replace_existing")))
