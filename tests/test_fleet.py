"""A run over several sandbox hosts at once, where one host is unreachable and one is broken.

The healthy host converges and the others fail with their reasons. The exit status is 1, and
each host's run.json and the summary table show all three. A re-run of the healthy host is
measured on its network link: it copies no bundle bytes.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from chain import gpurun_run, run_records
from ssh_alias import ssh_alias

from gpurun.bundle.manifest import load_manifest
from gpurun.sandbox.network import netns_name
from gpurun.steps import STEP_NAMES

pytestmark = pytest.mark.sandbox

# A missing comma between two keys: dockerd would not start, and gpurun must not touch it.
BROKEN_DAEMON_JSON = '{\n  "log-level": "warn"\n  "debug": false\n}\n'


def inventory_entry(host) -> dict:
    return {
        "ansible_host": host.address,
        "ansible_port": host.port,
        "ansible_user": host.user,
        "ansible_ssh_private_key_file": str(host.key_file),
        "gpurun_known_hosts_file": str(host.known_hosts_file),
    }


def link_bytes_sent(address: str) -> int:
    """Return the bytes the control node has sent on the link that leads to address."""
    route = subprocess.run(["ip", "-o", "route", "get", address], capture_output=True,
                           text=True, check=True).stdout.split()
    device = route[route.index("dev") + 1]
    return int(Path(f"/sys/class/net/{device}/statistics/tx_bytes").read_text())


@pytest.fixture(scope="module")
def fleet(sandbox_hosts, demo_bundle, tmp_path_factory):
    """Three hosts run at once: healthy (reached by an ssh alias), broken, unreachable."""
    healthy = sandbox_hosts.start("fleet-ok")
    broken = sandbox_hosts.start("fleet-json")
    gone = sandbox_hosts.start("fleet-gone", init="none")

    written = sandbox_hosts.run(broken, [
        "sh", "-c", 'mkdir -p /etc/docker && printf %s "$1" > /etc/docker/daemon.json', "sh",
        BROKEN_DAEMON_JSON])
    assert written.returncode == 0, written.stderr
    # With the host's end of its link down, the control node gets "No route to host".
    subprocess.run(["ip", "-n", netns_name(gone.name), "link", "set", "eth0", "down"],
                   check=True)

    folder = tmp_path_factory.mktemp("fleet")
    alias = f"gpurun-fleet-{os.getpid()}"
    with ssh_alias(alias, HostName=healthy.address, User=healthy.user, Port=str(healthy.port),
                   IdentityFile=str(healthy.key_file), IdentitiesOnly="yes",
                   UserKnownHostsFile=str(healthy.known_hosts_file)):
        inventory = folder / "inventory.yaml"
        inventory.write_text(yaml.safe_dump({"all": {
            "vars": {"bundle_dir": str(demo_bundle)},
            "children": {"rack1": {"hosts": {
                # Only the alias: user, port, key and known_hosts come from ssh's configuration.
                healthy.name: {"ansible_host": alias},
                broken.name: inventory_entry(broken),
                gone.name: inventory_entry(gone),
            }}},
        }}))
        outputs = folder / "outputs"
        first = gpurun_run(inventory, outputs, "--parallel", "3")

        sent_before = link_bytes_sent(healthy.address)
        again = gpurun_run(inventory, outputs, "--hosts", healthy.name)
        resent = link_bytes_sent(healthy.address) - sent_before
    try:
        yield {"healthy": healthy, "broken": broken, "gone": gone, "outputs": outputs,
               "first": first, "again": again, "resent": resent, "inventory": inventory,
               "folder": folder}
    finally:
        subprocess.run(["ip", "-n", netns_name(gone.name), "link", "set", "eth0", "up"],
                       check=False)


def record_of(fleet, role: str, index: int = 0) -> dict:
    return run_records(fleet["outputs"], fleet[role].name)[index]


def test_exit_status_reports_failure(fleet):
    assert fleet["first"].returncode == 1, fleet["first"].stdout + fleet["first"].stderr


def test_healthy_host_converges(fleet, sandbox_hosts):
    record = record_of(fleet, "healthy")
    assert record["status"] == "completed", record
    assert [step["name"] for step in record["steps"]] == STEP_NAMES
    assert all(step["status"] == "completed" for step in record["steps"])
    info = sandbox_hosts.run(fleet["healthy"], ["docker", "info", "--format",
                                                "{{.DefaultRuntime}}"])
    assert info.stdout.strip() == "nvidia", info.stderr


def test_unreachable_host_reason(fleet):
    record = record_of(fleet, "gone")
    assert record["status"] == "failed"
    assert record["failed_step"] == "connect"
    assert record["reason"] == "connect: no route to host"
    assert record["steps"] == []


def test_broken_host_reason(fleet, sandbox_hosts):
    record = record_of(fleet, "broken")
    assert record["status"] == "failed"
    assert record["failed_step"] == "preflight"
    assert "step preflight failed: PreflightError" in record["reason"]
    assert "invalid JSON in /etc/docker/daemon.json" in record["reason"]
    assert "line 3 column 3" in record["reason"]
    assert [step["name"] for step in record["steps"]] == ["preflight"]
    kept = sandbox_hosts.run(fleet["broken"], ["cat", "/etc/docker/daemon.json"]).stdout
    assert kept == BROKEN_DAEMON_JSON


def test_all_hosts_share_run_id(fleet):
    run_ids = {record_of(fleet, role)["run_id"] for role in ("healthy", "broken", "gone")}
    assert len(run_ids) == 1


def test_summary_table_lists_all(fleet):
    lines = fleet["first"].stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("host "))
    rows = {line.split()[0]: line for line in lines[header + 1:header + 4]}
    assert set(rows) == {fleet[role].name for role in ("healthy", "broken", "gone")}
    assert rows[fleet["healthy"].name].split()[1] == "completed"
    assert "no route to host" in rows[fleet["gone"].name]
    assert "PreflightError" in rows[fleet["broken"].name]
    assert "1 of 3 hosts succeeded" in fleet["first"].stdout


def test_summary_says_next_step_and_resume(fleet):
    stdout = fleet["first"].stdout
    broken = fleet["broken"].name
    run_id = record_of(fleet, "broken")["run_id"]
    after_table = stdout.split("hosts succeeded", 1)[1]
    assert f"\n{broken}: step preflight failed" in after_table
    assert "  next step: " in after_table
    assert "  record: " in after_table
    assert f"--resume {run_id}" in after_table


def test_unreachable_host_fails_fast(fleet):
    # A host with no route fails at connect, before a kernel starts: ARP gives up in seconds.
    record = record_of(fleet, "gone")
    healthy = record_of(fleet, "healthy")
    assert _seconds(record) < 15
    assert _seconds(healthy) > _seconds(record)


def test_rerun_uploads_nothing(fleet, demo_bundle):
    again = fleet["again"]
    assert again.returncode == 0, again.stdout + again.stderr
    record = record_of(fleet, "healthy", 1)
    assert all(step["uploaded_bytes"] == 0 for step in record["steps"]), record["steps"]
    first = record_of(fleet, "healthy", 0)
    bundle_bytes = sum(entry.size for entry in load_manifest(demo_bundle).files)
    assert sum(step["uploaded_bytes"] for step in first["steps"]) > bundle_bytes // 2
    # Measured on the link itself: the whole re-run sends less than a tenth of the bundle.
    assert fleet["resent"] < bundle_bytes // 10, (fleet["resent"], bundle_bytes)


def test_login_failure_reasons(fleet, tmp_path):
    healthy = fleet["healthy"]
    other_key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)],
                   check=True)
    # A known_hosts file that lists another key for the host's address.
    wrong_known_hosts = tmp_path / "known_hosts"
    public = (tmp_path / "other_key.pub").read_text().split()
    wrong_known_hosts.write_text(f"{healthy.address} {public[0]} {public[1]}\n")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {
        "auth-refused": {**inventory_entry(healthy),
                         "ansible_ssh_private_key_file": str(other_key)},
        "key-changed": {**inventory_entry(healthy),
                        "gpurun_known_hosts_file": str(wrong_known_hosts)},
    }}}))
    result = gpurun_run(inventory, tmp_path / "outputs", "--parallel", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    reasons = {name: run_records(tmp_path / "outputs", name)[0]["reason"]
               for name in ("auth-refused", "key-changed")}
    assert reasons == {"auth-refused": "connect: authentication refused",
                       "key-changed": "connect: host key changed"}


def test_report_lists_all_hosts(fleet):
    pytest.importorskip("gpurun.report", reason="the report needs gpurun.report")
    from gpurun.report import write_report

    report = write_report(fleet["outputs"])
    page = Path(report.index).read_text()
    for role in ("healthy", "broken", "gone"):
        assert fleet[role].name in page


def _seconds(record: dict) -> float:
    import calendar
    import time

    def epoch(stamp: str) -> float:
        return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))

    return epoch(record["ended"]) - epoch(record["started"])


def test_run_json_is_valid_json_for_all(fleet):
    for role in ("healthy", "broken", "gone"):
        host = fleet[role].name
        [folder] = [p for p in (fleet["outputs"] / host).iterdir()
                    if p.name == record_of(fleet, role)["run_id"]]
        data = json.loads((folder / "run.json").read_text())
        assert data["host"] == host
        assert data["requested_steps"] == STEP_NAMES
