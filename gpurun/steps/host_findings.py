"""Preflight findings computed from facts alone: kernel, cgroups, firewall, SELinux, driver, disk.

Each function takes facts that were already read and returns findings, so every rule can be
tested on its input without a host.
"""

from __future__ import annotations

from collections.abc import Callable

from gpurun.bundle.manifest import Manifest
from gpurun.facts import kernel as kernel_facts
from gpurun.facts import nvidia as nvidia_facts
from gpurun.steps.findings import Finding, blocking, ok, warning

# libnvidia-container supports cgroup v2 from version 1.8.0 on.
CGROUP_V2_MIN_LIBNVIDIA_CONTAINER = (1, 8, 0)
# dockerd supports cgroup v2 from 20.10 on.
CGROUP_V2_MIN_DOCKER = (20, 10)
# Docker's documented minimum kernel, and the one overlay2 needs outside RHEL 7's backports.
MIN_KERNEL = (3, 10)
MIN_KERNEL_OVERLAY2 = (4, 0)
# Docker 28.0 adds rules to iptables' raw table for published ports; without the table
# `docker run -p` fails (reported with 28.0.1 in moby/moby issue 49557).
RAW_TABLE_MIN_DOCKER = (28, 0)
# Offsets above this can fail TLS certificate checks and make logs hard to line up.
MAX_CLOCK_OFFSET_S = 60
KIB_PER_MIB = 1024
# NOTE: an estimate: CUDA base images take 2 to 8 GiB each, so less leaves room for few.
DATA_ROOT_WARNING_KIB = 10 * 1024 * 1024

AVAILABLE = {kernel_facts.LOADED, kernel_facts.BUILT_IN, kernel_facts.LOADABLE}


def version_tuple(version: str) -> tuple[int, ...]:
    """Return the leading numbers of a version: '1.17.2-1' -> (1, 17, 2), '20.10.24+dfsg' ->
    (20, 10, 24)."""
    numbers = []
    for part in version.split("-")[0].split("+")[0].split("~")[0].split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def libnvidia_container_version(manifest: Manifest) -> str:
    """Return the bundle's libnvidia-container version, or the toolkit version without one."""
    for package in manifest.toolkit_packages():
        if package.name.startswith("libnvidia-container") and "tools" not in package.name:
            return package.version
    return manifest.toolkit_version


def kernel_version(kernel: kernel_facts.KernelFacts) -> Finding:
    name = "kernel"
    if not kernel.version:
        return warning(name, f"cannot read the version from `uname -r` ({kernel.release})",
                       "check that the kernel is 4.0 or newer")
    if kernel.version < MIN_KERNEL:
        return blocking(name, f"{kernel.release} is older than 3.10, Docker's minimum",
                        "boot a kernel of 4.0 or newer")
    if kernel.version < MIN_KERNEL_OVERLAY2:
        return warning(name, f"{kernel.release}: overlay2 needs 4.0 (or RHEL 7's 3.10.0-514)",
                       "boot a newer kernel, or expect dockerd to pick a slower storage driver")
    return ok(name, kernel.release)


def kernel_modules(kernel: kernel_facts.KernelFacts, iptables_provider: str,
                   docker_version: str, iptables_disabled: bool) -> list[Finding]:
    """Return one finding per kernel feature Docker needs: overlay, br_netfilter, nat, raw."""
    states = kernel.modules
    nft = "nf_tables" in iptables_provider
    table_nat = "nft_chain_nat" if nft else "iptable_nat"
    table_raw = "nf_tables" if nft else "iptable_raw"
    sources = ", ".join(kernel.sources) or "no module list"
    findings = [
        _module("overlay", ["overlay"], states, sources,
                "dockerd falls back to the vfs storage driver, which copies every layer in full",
                "load it with `modprobe overlay`, or install the kernel's extra modules"),
        _module("br_netfilter", ["br_netfilter"], states, sources,
                "traffic between containers on one bridge bypasses iptables, so published "
                "ports do not work container to container",
                "load it with `modprobe br_netfilter`"),
    ]
    if iptables_disabled:
        findings.append(ok("kernel: nat", "not needed: iptables is disabled for dockerd"))
        return findings
    findings.append(_module("nat", ["nf_nat", table_nat], states, sources,
                            "dockerd cannot create its NAT chain and does not start",
                            f"load it with `modprobe {table_nat}`", missing=blocking))
    version = version_tuple(docker_version)
    if version and version < RAW_TABLE_MIN_DOCKER:
        findings.append(ok("kernel: raw", f"not needed by Docker {docker_version}"))
    else:
        findings.append(_module("raw", [table_raw], states, sources,
                                f"Docker {docker_version} filters published ports in the raw "
                                f"table, so `docker run -p` fails without it",
                                f"load it with `modprobe {table_raw}`"))
    return findings


def _module(feature: str, modules: list[str], states: dict[str, str], sources: str,
            without: str, fix: str, missing: Callable[[str, str, str], Finding] = warning,
            ) -> Finding:
    """Return ok when every module is available, else `missing` (a warning where unsure)."""
    name = f"kernel: {feature}"
    found = {module: states.get(module, kernel_facts.UNKNOWN) for module in modules}
    listing = ", ".join(f"{module} {state}" for module, state in found.items())
    if all(state in AVAILABLE for state in found.values()):
        return ok(name, listing)
    if any(state == kernel_facts.UNKNOWN for state in found.values()):
        return warning(name, f"{listing} (read from {sources}); without it {without}",
                       f"check with `modinfo {' '.join(modules)}`; {fix}")
    return missing(name, f"{listing}; without it {without}", fix)


def cgroups(cgroup_version: int, manifest: Manifest) -> Finding:
    name = "cgroups"
    if cgroup_version != 2:
        return ok(name, f"cgroup v{cgroup_version}: every toolkit version supports it")
    library = libnvidia_container_version(manifest)
    if version_tuple(library) < CGROUP_V2_MIN_LIBNVIDIA_CONTAINER:
        return blocking(name, f"cgroup v2 host, but the bundle has libnvidia-container "
                              f"{library}, which supports cgroup v2 only from 1.8.0 on",
                        "build a bundle with NVIDIA Container Toolkit 1.8.0 or newer")
    docker = version_tuple(manifest.docker_version)
    if docker and docker < CGROUP_V2_MIN_DOCKER:
        return blocking(name, f"cgroup v2 host, but Docker {manifest.docker_version} supports "
                              f"cgroup v2 only from 20.10 on",
                        "build a bundle with Docker 20.10 or newer")
    return ok(name, f"cgroup v2, libnvidia-container {library} supports it")


def iptables(path: str | None, provider: str, disabled: bool) -> Finding:
    name = "iptables"
    if path is None and not disabled:
        return blocking(name, "iptables not found on PATH: dockerd cannot set up its default "
                              "bridge network without it and does not start",
                        "install the distribution's iptables package; only if you manage "
                        "the firewall yourself, set \"iptables\": false in daemon.json, and "
                        "containers then get no NAT or published ports")
    if path is None:
        return ok(name, "not installed, and not needed: iptables is disabled for dockerd")
    return ok(name, f"{path}: {provider}")


def selinux(mode: str) -> Finding:
    name = "SELinux"
    if mode == "Enforcing":
        return warning(name, "enforcing: containers run confined, and a GPU container may be "
                             "denied the /dev/nvidia* device nodes",
                       "gpurun never turns SELinux off; allow the devices with a policy "
                       "(container_use_devices), or run GPU containers with "
                       "`--security-opt label=disable`")
    if mode == "Permissive":
        return ok(name, "permissive: denials are logged, not enforced")
    return ok(name, mode)


def driver(facts: nvidia_facts.DriverFacts) -> Finding:
    name = "NVIDIA driver"
    if facts.driver_loaded:
        return ok(name, f"{facts.detail}; kernel module nvidia {facts.kernel_module}")
    return warning(name, facts.summary,
                   "Docker and the toolkit install anyway, but containers that request GPUs "
                   "fail with \"driver not loaded\" until the NVIDIA driver is installed and "
                   "`nvidia-smi` lists the GPUs")


def disk(free_kib: dict[str, int], bundle_dir: str, data_root: str,
         manifest: Manifest) -> list[Finding]:
    """Return the space findings for the bundle's folder and dockerd's data root."""
    # The bundle is uploaded and the tarball unpacked beside it: about three times its size.
    bundle_kib = 3 * sum(f.size for f in manifest.files) // 1024
    image = manifest.test_image()
    # A loaded image takes its tarball's size again once unpacked into layers.
    image_kib = 2 * image.size // 1024 if image else 0
    return [_space(f"disk: {bundle_dir}", free_kib.get(bundle_dir), bundle_kib, 0),
            _space(f"disk: {data_root}", free_kib.get(data_root), image_kib,
                   DATA_ROOT_WARNING_KIB)]


def _space(name: str, free: int | None, needed: int, comfortable: int) -> Finding:
    path = name.split(": ", 1)[1]
    if free is None:
        return warning(name, f"could not read the free space of {path}",
                       f"check `df -h {path}` on the host")
    summary = f"{free // KIB_PER_MIB} MiB free, {needed // KIB_PER_MIB} MiB needed"
    if free < needed:
        return blocking(name, summary, f"free space on the filesystem of {path}")
    if free < comfortable:
        return warning(name, f"{summary}; GPU images take several GiB each",
                       f"free space on the filesystem of {path}, or move dockerd's data-root")
    return ok(name, summary)


def clock(offset_s: float | None) -> Finding:
    name = "clock"
    if offset_s is None:
        return warning(name, "could not read the host's time with `date`",
                       "check the host's clock")
    if abs(offset_s) > MAX_CLOCK_OFFSET_S:
        direction = "ahead of" if offset_s > 0 else "behind"
        return warning(name, f"host is {abs(offset_s):.0f} s {direction} the control node",
                       "set the clock or enable time sync (chrony, systemd-timesyncd); TLS "
                       "checks and the change record's times depend on it")
    return ok(name, f"{offset_s:+.1f} s from the control node")
