"""Preflight rules on their input: kernel modules, cgroups, iptables, SELinux, driver, disk, clock."""

from __future__ import annotations

import pytest

from gpurun import daemon_config
from gpurun.bundle.manifest import BundleFile, Manifest
from gpurun.facts import kernel as kernel_facts
from gpurun.facts import nvidia as nvidia_facts
from gpurun.facts.system import parse_iptables_version
from gpurun.steps import host_findings
from gpurun.steps.dockerd_findings import config_findings

SHA = "0" * 64


def manifest(library: str = "1.17.2-1", docker: str = "20.10.24",
             image_size: int = 5 << 20) -> Manifest:
    files = [
        BundleFile("docker/docker.tgz", "docker-static", "docker", docker, "x86_64", 60 << 20,
                   SHA),
        BundleFile("toolkit/lib.deb", "toolkit-package", "libnvidia-container1", library,
                   "amd64", 1 << 20, SHA),
        BundleFile("toolkit/tk.deb", "toolkit-package", "nvidia-container-toolkit", library,
                   "amd64", 1 << 20, SHA),
        BundleFile("images/busybox.tar", "test-image", "gpurun/busybox", "demo", "x86_64",
                   image_size, SHA, image="gpurun/busybox:demo"),
    ]
    return Manifest("2026-01-01T00:00:00Z", "test", "x86_64", "deb", docker,
                    library.split("-")[0], files,
                    ["libnvidia-container1", "nvidia-container-toolkit"])


def sources(**texts: str | None) -> kernel_facts.KernelSources:
    fields = {"release": "6.1.0-18-amd64", "proc_modules": None, "sys_modules": None,
              "modules_builtin": None, "modules_dep": None, "config": None}
    fields.update(texts)
    return kernel_facts.KernelSources(**fields)


def kernel(states: dict[str, str], release: str = "6.1.0-18-amd64") -> kernel_facts.KernelFacts:
    modules = dict.fromkeys(kernel_facts.MODULES, kernel_facts.LOADED)
    modules.update(states)
    return kernel_facts.KernelFacts(release, kernel_facts.parse_release(release), modules,
                                    ["/proc/modules", "modules.dep"])


# -- kernel facts ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("release", "version"),
    [("5.15.0-91-generic", (5, 15, 0)), ("3.10.0-1160.el7.x86_64", (3, 10, 0)),
     ("6.8", (6, 8)), ("weird", ())],
)
def test_parse_release(release, version):
    assert kernel_facts.parse_release(release) == version


def test_module_states_from_each_source():
    states = kernel_facts.module_states(sources(
        proc_modules="overlay 151552 0 - Live 0x0\nnf_nat 49152 2 - Live 0x0\n",
        sys_modules="br_netfilter\n",
        modules_builtin="kernel/net/netfilter/nf_tables.ko\n",
        modules_dep="kernel/net/ipv4/netfilter/iptable_nat.ko.zst: kernel/net/netfilter/x.ko\n",
        config="CONFIG_IP_NF_RAW=m\nCONFIG_NFT_NAT=y\n",
    ))
    assert states["overlay"] == kernel_facts.LOADED
    assert states["nf_nat"] == kernel_facts.LOADED
    assert states["br_netfilter"] == kernel_facts.LOADED
    assert states["nf_tables"] == kernel_facts.BUILT_IN
    assert states["nft_chain_nat"] == kernel_facts.BUILT_IN
    assert states["iptable_nat"] == kernel_facts.LOADABLE
    assert states["iptable_raw"] == kernel_facts.LOADABLE
    assert states["nvidia"] == kernel_facts.MISSING


def test_module_states_without_a_module_list_are_unknown():
    states = kernel_facts.module_states(sources(proc_modules="overlay 1 0 - Live 0x0\n"))
    assert states["overlay"] == kernel_facts.LOADED
    assert states["br_netfilter"] == kernel_facts.UNKNOWN


# -- kernel findings ------------------------------------------------------------------------

def levels(findings):
    return {f.check: f.level for f in findings}


def test_kernel_version_levels():
    assert host_findings.kernel_version(kernel({}, "3.2.0")).level == "blocking"
    assert host_findings.kernel_version(kernel({}, "3.10.0-1160.el7")).level == "warning"
    assert host_findings.kernel_version(kernel({}, "5.15.0")).level == "ok"


def test_all_modules_available_is_ok():
    findings = host_findings.kernel_modules(kernel({}), "v1.8.9 (nf_tables)", "27.3.1", False)
    assert set(levels(findings).values()) == {"ok"}
    assert len(findings) == 4


def test_missing_nat_blocks():
    found = kernel({"iptable_nat": kernel_facts.MISSING, "nf_nat": kernel_facts.MISSING})
    findings = levels(host_findings.kernel_modules(found, "v1.8.7 (legacy)", "24.0.7", False))
    assert findings["kernel: nat"] == "blocking"


def test_nat_unknown_warns():
    found = kernel({"iptable_nat": kernel_facts.UNKNOWN})
    findings = levels(host_findings.kernel_modules(found, "v1.8.7 (legacy)", "24.0.7", False))
    assert findings["kernel: nat"] == "warning"


def test_nat_not_needed_without_iptables():
    found = kernel({"iptable_nat": kernel_facts.MISSING, "nf_nat": kernel_facts.MISSING})
    findings = levels(host_findings.kernel_modules(found, "not installed", "24.0.7", True))
    assert findings["kernel: nat"] == "ok"


def test_raw_table_needed_from_docker_28():
    found = kernel({"iptable_raw": kernel_facts.MISSING})
    old = host_findings.kernel_modules(found, "v1.8.7 (legacy)", "27.5.1", False)
    new = host_findings.kernel_modules(found, "v1.8.7 (legacy)", "28.0.1", False)
    assert levels(old)["kernel: raw"] == "ok"
    assert levels(new)["kernel: raw"] == "warning"
    assert "28.0.1" in next(f for f in new if f.check == "kernel: raw").detail


def test_missing_overlay_warns():
    found = kernel({"overlay": kernel_facts.MISSING})
    findings = host_findings.kernel_modules(found, "v1.8.9 (nf_tables)", "20.10.24", False)
    overlay = next(f for f in findings if f.check == "kernel: overlay")
    assert overlay.level == "warning"
    assert "vfs" in overlay.detail


# -- cgroups (an old libnvidia-container on a cgroup v2 host) ------------------------------

@pytest.mark.parametrize(
    ("cgroup_version", "library", "level"),
    [(1, "1.4.0-1", "ok"), (2, "1.7.0-1", "blocking"), (2, "1.8.0-1", "ok"),
     (2, "1.17.2-1", "ok")],
)
def test_cgroups_and_libnvidia_container(cgroup_version, library, level):
    finding = host_findings.cgroups(cgroup_version, manifest(library))
    assert finding.level == level
    if level == "blocking":
        assert "1.8.0" in finding.detail
        assert library in finding.detail


def test_cgroup_v2_needs_docker_20_10():
    finding = host_findings.cgroups(2, manifest(docker="19.03.15"))
    assert finding.level == "blocking"
    assert "20.10" in finding.detail


# -- iptables, SELinux, driver, clock, disk ------------------------------------------------

def test_no_iptables_blocks_and_names_the_option():
    finding = host_findings.iptables(None, "not installed", disabled=False)
    assert finding.level == "blocking"
    assert "default bridge network" in finding.detail
    assert '"iptables": false' in finding.next_step


def test_no_iptables_is_fine_when_disabled():
    assert host_findings.iptables(None, "not installed", disabled=True).level == "ok"


@pytest.mark.parametrize(
    ("output", "parsed"),
    [("iptables v1.8.9 (nf_tables)\n", "v1.8.9 (nf_tables)"),
     ("iptables v1.8.7 (legacy)\n", "v1.8.7 (legacy)"),
     ("iptables v1.4.21\n", "v1.4.21"),
     ("", "version unknown")],
)
def test_parse_iptables_version(output, parsed):
    assert parse_iptables_version(output) == parsed


def test_selinux_enforcing_warns_and_keeps_it_on():
    finding = host_findings.selinux("Enforcing")
    assert finding.level == "warning"
    assert "never turns SELinux off" in finding.next_step
    assert "/dev/nvidia" in finding.detail
    assert host_findings.selinux("Permissive").level == "ok"
    assert host_findings.selinux("absent").level == "ok"


def test_driver_state_is_plain():
    facts = nvidia_facts.DriverFacts(
        "/usr/bin/nvidia-smi", False, nvidia_facts.MODULE_NOT_LOADED, [], [],
        "nvidia-smi exited 9: NVIDIA-SMI has failed", 9)
    finding = host_findings.driver(facts)
    assert finding.level == "warning"
    assert "no NVIDIA driver on this host" in finding.detail
    assert "nvidia-smi exited 9" in finding.detail
    assert "kernel module nvidia not loaded" in finding.detail
    assert "no /dev/nvidia* nodes" in finding.detail


def test_driver_loaded_is_ok():
    gpus = nvidia_facts.parse_gpu_list("GPU 0: NVIDIA A100 (UUID: GPU-1)\nGPU 1: NVIDIA A100\n")
    facts = nvidia_facts.DriverFacts("/usr/bin/nvidia-smi", True, nvidia_facts.MODULE_LOADED,
                                     ["/dev/nvidiactl", "/dev/nvidia0"], gpus, "2 GPUs")
    assert host_findings.driver(facts).level == "ok"
    assert len(gpus) == 2


@pytest.mark.parametrize(("offset", "level"), [(0.4, "ok"), (-59.0, "ok"), (61.0, "warning"),
                                               (-3600.0, "warning"), (None, "warning")])
def test_clock_offset(offset, level):
    assert host_findings.clock(offset).level == level


def test_disk_needs_room_for_bundle_and_image():
    bundle = manifest(image_size=100 << 20)
    plenty = 50 << 20  # KiB, 50 GiB
    findings = host_findings.disk({"/var/lib/gpurun": plenty, "/var/lib/docker": 150 << 10},
                                  "/var/lib/gpurun", "/var/lib/docker", bundle)
    assert levels(findings) == {"disk: /var/lib/gpurun": "ok",
                                "disk: /var/lib/docker": "blocking"}
    findings = host_findings.disk({"/var/lib/gpurun": 1 << 10, "/var/lib/docker": 5 << 20},
                                  "/var/lib/gpurun", "/var/lib/docker", bundle)
    assert levels(findings) == {"disk: /var/lib/gpurun": "blocking",
                                "disk: /var/lib/docker": "warning"}
    findings = host_findings.disk({}, "/var/lib/gpurun", "/srv/docker", bundle)
    assert levels(findings) == {"disk: /var/lib/gpurun": "warning",
                                "disk: /srv/docker": "warning"}


def test_version_tuple():
    assert host_findings.version_tuple("20.10.24+dfsg1") == (20, 10, 24)
    assert host_findings.version_tuple("1.17.2-1") == (1, 17, 2)
    assert host_findings.version_tuple("28.0.0~rc1") == (28, 0, 0)


# -- dockerd's configuration ---------------------------------------------------------------

def test_runtime_in_file_and_flag_names_both_places():
    argv = ["dockerd", "-H", "fd://", "--add-runtime=nvidia=/usr/bin/nvidia-container-runtime"]
    origins = ["/u"] * 3 + ["/etc/systemd/system/docker.service.d/nvidia.conf"]
    command_line = daemon_config.parse_dockerd_argv(argv, origins)
    config = {"runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime"}}}
    findings = config_findings("/etc/docker/daemon.json", config, command_line)
    twice = [f for f in findings if f.check == "dockerd option runtimes"]
    assert len(twice) == 1
    assert twice[0].level == "blocking"
    assert "/etc/docker/daemon.json" in twice[0].detail
    assert "/etc/systemd/system/docker.service.d/nvidia.conf" in twice[0].detail


def test_undefined_default_runtime_blocks():
    command_line = daemon_config.parse_dockerd_argv(["dockerd", "-H", "fd://"])
    findings = config_findings("/etc/docker/daemon.json", {"default-runtime": "nvidia"},
                               command_line)
    undefined = [f for f in findings if f.check == "default runtime"]
    assert [f.level for f in undefined] == ["blocking"]
    assert "'nvidia'" in undefined[0].detail
    assert "--steps runtime" in undefined[0].next_step


def test_clean_config_is_ok():
    command_line = daemon_config.parse_dockerd_argv(["dockerd", "-H", "fd://"])
    config = {"runtimes": {"nvidia": {"path": "/usr/bin/ncr"}}, "default-runtime": "nvidia"}
    findings = config_findings("/etc/docker/daemon.json", config, command_line)
    assert [f.level for f in findings] == ["ok"]

