"""Preflight on a real host for the field cases it must catch: no driver, cgroup v2 with an old
libnvidia-container, SELinux enforcing, and no iptables.

All tests share one host without Docker. Each changes one thing on it as the case's input and
puts it back afterwards, and gpurun itself only reads.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from chain import notebook_text
from runtime_hosts import StepRuns, put_file, ssh, ssh_ok

pytestmark = pytest.mark.sandbox

OLD_LIBRARY = "1.7.0-1"


@pytest.fixture(scope="module")
def preflight_host(sandbox_hosts, demo_bundle, tmp_path_factory):
    host = sandbox_hosts.start("pf-cases")
    return StepRuns(host, demo_bundle, tmp_path_factory.mktemp("pf-cases"))


@pytest.fixture
def old_toolkit_bundle(demo_bundle, tmp_path):
    """Return a copy of the demo bundle whose manifest lists libnvidia-container 1.7.0."""
    copy = tmp_path / "old-toolkit"
    shutil.copytree(demo_bundle, copy, copy_function=os.link)
    manifest_path = copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.unlink()  # a hard link: never write through it into the shared bundle
    manifest["toolkit_version"] = OLD_LIBRARY.split("-")[0]
    for entry in manifest["files"]:
        if entry["kind"] == "toolkit-package":
            entry["version"] = OLD_LIBRARY
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return copy


def findings_text(runs: StepRuns, record: dict) -> str:
    text = notebook_text(runs.notebook(record, "preflight"))
    return text[text.index("Findings"):]


def test_host_without_driver_is_reported_plainly(preflight_host):
    record = preflight_host.run("preflight")
    assert record["status"] == "completed", record["process_output"]
    findings = findings_text(preflight_host, record)
    line = next(row for row in findings.splitlines() if "NVIDIA driver" in row)
    assert line.startswith("warning")
    assert "nvidia-smi not found" in line
    assert "kernel module nvidia not loaded" in line
    assert "no /dev/nvidia* nodes" in line
    for check in ("kernel: overlay", "kernel: nat", "cgroups", "clock", "iptables"):
        assert check in findings


def test_cgroup_v2_with_old_libnvidia_container_blocks(preflight_host, old_toolkit_bundle):
    host = preflight_host.host
    # A real cgroup2 hierarchy mounted where the probe looks makes this host cgroup v2.
    ssh_ok(host, "mkdir -p /run/cg2 && mount -t cgroup2 none /run/cg2 && "
                 "mount --bind /run/cg2 /sys/fs/cgroup")
    try:
        old = StepRuns(host, old_toolkit_bundle, preflight_host.folder / "old")
        record = old.run("preflight")
        assert record["status"] == "failed"
        error = old.step(record, "preflight")["error"]
        assert "cgroup v2" in error
        assert OLD_LIBRARY in error
        assert "1.8.0" in error

        record = preflight_host.run("preflight")
        assert record["status"] == "completed", record["process_output"]
        assert "cgroup v2, libnvidia-container" in findings_text(preflight_host, record)
    finally:
        ssh(host, "umount /sys/fs/cgroup; umount /run/cg2")
    assert ssh(host, "test -e /sys/fs/cgroup/cgroup.controllers").returncode != 0


def test_selinux_enforcing_is_reported_and_kept(preflight_host):
    host = preflight_host.host
    # The case's input: `getenforce` prints Enforcing.
    put_file(host, "/usr/local/sbin/getenforce", "#!/bin/sh\necho Enforcing\n", "0755")
    try:
        record = preflight_host.run("preflight")
        assert record["status"] == "completed", record["process_output"]
        text = notebook_text(preflight_host.notebook(record, "preflight"))
        findings = text[text.index("Findings"):]
        line = next(row for row in findings.splitlines() if "SELinux" in row)
        assert line.startswith("warning")
        assert "/dev/nvidia" in line
        assert "never turns SELinux off" in line
        assert "setenforce" not in text
        assert ssh_ok(host, "getenforce").strip() == "Enforcing"
    finally:
        ssh(host, "rm -f /usr/local/sbin/getenforce")


def test_no_iptables_stops_before_any_change(preflight_host):
    host = preflight_host.host
    ssh_ok(host, "mv /usr/sbin/iptables /root/iptables.hidden")
    try:
        assert ssh(host, "command -v iptables").returncode != 0
        record = preflight_host.run()
        assert record["status"] == "failed"
        assert [s["name"] for s in record["steps"]] == ["preflight"]
        error = preflight_host.step(record, "preflight")["error"]
        assert "iptables not found" in error
        assert "default bridge network" in error
        assert '"iptables": false' in error
        assert ssh(host, "test -e /usr/bin/dockerd").returncode != 0
        assert ssh(host, f"test -e /var/lib/gpurun/runs/{record['run_id']}/changes.jsonl"
                   ).returncode != 0
    finally:
        ssh(host, "mv /root/iptables.hidden /usr/sbin/iptables")
