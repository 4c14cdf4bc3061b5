"""Field cases of the binaries and service steps, each on its own sandbox host.

No docker group before docker.socket; unit files that do not fit together; binaries that
are not executable or not on the service's PATH.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from chain import error_outputs, gpurun_run, run_records, write_inventory
from gpurun.bundle.manifest import load_manifest, sha256_file, write_manifest
from gpurun.errors import RemoteCommandError
from gpurun.host import Host, HostSpec, connect
from gpurun.operations import service

pytestmark = pytest.mark.sandbox

BINARY_STEPS = "docker-binaries,docker-service"


def run_steps(sandbox_hosts, host, bundle, folder: Path, steps: str, **variables):
    folder.mkdir(parents=True, exist_ok=True)
    inventory = write_inventory(folder / "inventory.yaml", host, bundle_dir=str(bundle),
                                **variables)
    result = gpurun_run(inventory, folder / "outputs", "--steps", steps)
    records = run_records(folder / "outputs", host.name)
    return result, records[-1]


def connect_host(host) -> Host:
    spec = HostSpec(name=host.name, address=host.address, port=host.port, user=host.user,
                    key_file=str(host.key_file), known_hosts_file=str(host.known_hosts_file))
    return Host(spec=spec, machine=connect(spec), run_id="test-cases")


def test_docker_group_created_before_socket(sandbox_hosts, demo_bundle, tmp_path):
    host = sandbox_hosts.start("c11")
    assert sandbox_hosts.run(host, ["getent", "group", "docker"]).returncode == 2

    result, record = run_steps(sandbox_hosts, host, demo_bundle, tmp_path, BINARY_STEPS)

    assert result.returncode == 0, result.stdout + result.stderr
    assert record["status"] == "completed"
    assert sandbox_hosts.run(host, ["getent", "group", "docker"]).returncode == 0
    for unit in ("docker.socket", "docker.service", "containerd.service"):
        state = sandbox_hosts.run(host, ["systemctl", "is-active", unit]).stdout.strip()
        assert state == "active", unit
    group = sandbox_hosts.run(host, ["stat", "-c", "%G", "/run/docker.sock"]).stdout.strip()
    assert group == "docker"
    # A system group (its id below the host's UID_MIN), created before the socket was enabled.
    gid = int(sandbox_hosts.run(host, ["getent", "group", "docker"]).stdout.split(":")[2])
    read_uid_min = "awk '$1 == \"UID_MIN\" {print $2}' /etc/login.defs"
    uid_min = sandbox_hosts.run(host, ["sh", "-c", read_uid_min]).stdout.strip() or "1000"
    assert gid < int(uid_min), gid
    journal = sandbox_hosts.run(
        host, ["cat", f"/var/lib/gpurun/runs/{record['run_id']}/changes.jsonl"]).stdout
    order = [json.loads(line)["path"] for line in journal.splitlines()]
    assert order.index("group docker") < order.index("unit docker.socket"), order


# Hand-written units from a blog post, each unfit in its own way: socket activation without a
# docker.socket, a containerd socket that no containerd serves, or both.
MISMATCHED_EXEC_STARTS = {
    "fd-without-socket": "/usr/bin/dockerd -H fd://",
    "containerd-nowhere": "/usr/bin/dockerd -H unix:///run/docker.sock "
                          "--containerd=/run/nowhere/containerd.sock",
    "both": "/usr/bin/dockerd -H fd:// --containerd=/run/nowhere/containerd.sock",
}


@pytest.mark.parametrize("variant", sorted(MISMATCHED_EXEC_STARTS))
def test_mismatched_units_replaced_with_consistent_set(sandbox_hosts, demo_bundle, tmp_path,
                                                       variant):
    host = sandbox_hosts.start(f"c12-{variant[:4]}")
    unit_text = (f"[Unit]\nDescription=blog post unit {variant}\n[Service]\n"
                 f"ExecStart={MISMATCHED_EXEC_STARTS[variant]}\n"
                 f"[Install]\nWantedBy=multi-user.target\n")
    write_unit = f"printf '%s' '{unit_text}' > /etc/systemd/system/docker.service"
    sandbox_hosts.run(host, ["sh", "-c", write_unit])

    result, record = run_steps(sandbox_hosts, host, demo_bundle, tmp_path, BINARY_STEPS)

    assert result.returncode == 0, result.stdout + result.stderr
    service_step = record["steps"][-1]
    targets = {o["target"]: o for o in service_step["outcomes"]}
    assert targets["/etc/systemd/system/docker.socket"]["status"] == "changed"
    assert targets["/etc/systemd/system/docker.service"]["status"] == "changed"
    assert targets["systemd"]["change"] == "daemon-reload, systemd-analyze verify"
    unit = sandbox_hosts.run(host, ["systemctl", "cat", "docker.service"]).stdout
    assert "--containerd=/run/containerd/containerd.sock" in unit
    assert "nowhere" not in unit
    assert "blog post unit" not in unit
    backup = f"/var/lib/gpurun/runs/{record['run_id']}/backup/etc/systemd/system/docker.service"
    assert f"blog post unit {variant}" in sandbox_hosts.run(host, ["cat", backup]).stdout
    socket = sandbox_hosts.run(host, ["systemctl", "is-active", "docker.socket"])
    assert socket.stdout.strip() == "active"
    assert sandbox_hosts.run(host, ["docker", "version"]).returncode == 0


def test_unit_check_failure_names_the_unit(sandbox_hosts):
    host = sandbox_hosts.start("c12b")
    path = "/etc/systemd/system/gpurun-broken.service"
    sandbox_hosts.run(host, ["sh", "-c", f"printf '[Service]\\nExecStart=relative/path\\n' > {path}"])
    connected = connect_host(host)

    with pytest.raises(RemoteCommandError) as raised:
        service.reload_and_verify_units(connected, [path])

    assert path in str(raised.value)
    assert "systemd-analyze" in str(raised.value)


def bundle_with_mode_0644(source: Path, target: Path) -> Path:
    """Copy a bundle, repacking its Docker tarball with every member mode 0644."""
    shutil.copytree(source, target)
    manifest = load_manifest(target)
    tarball = manifest.docker_tarball()
    path = target / tarball.path
    members = []
    with tarfile.open(path) as original:
        for member in original.getmembers():
            data = original.extractfile(member).read() if member.isfile() else None
            members.append((member, data))
    with tarfile.open(path, "w:gz") as repacked:
        for member, data in members:
            member.mode = 0o644 if member.isfile() else member.mode
            repacked.addfile(member, io.BytesIO(data) if data is not None else None)
    updated = dataclasses.replace(tarball, size=path.stat().st_size, sha256=sha256_file(path))
    files = [updated if f.path == tarball.path else f for f in manifest.files]
    write_manifest(target, dataclasses.replace(manifest, files=files))
    return target


def test_tarball_with_mode_0644_installs_0755(sandbox_hosts, demo_bundle, tmp_path):
    host = sandbox_hosts.start("c13")
    bundle = bundle_with_mode_0644(demo_bundle, tmp_path / "bundle-0644")

    result, record = run_steps(sandbox_hosts, host, bundle, tmp_path, "docker-binaries")

    assert result.returncode == 0, result.stdout + result.stderr
    modes = sandbox_hosts.run(host, ["stat", "-c", "%a %U %n", "/usr/bin/dockerd",
                                     "/usr/bin/runc", "/usr/bin/docker-init"]).stdout.split("\n")
    assert all(line.startswith("755 root ") for line in modes if line), modes
    checks = load_checks(tmp_path / "outputs", host.name, record, "docker-binaries")
    assert {c["name"] for c in checks if c["status"] == "passed"} >= {"dockerd runs", "runc runs"}


def test_binary_mode_fixed_in_place(sandbox_hosts, demo_bundle, tmp_path):
    host = sandbox_hosts.start("c13b")
    first, _ = run_steps(sandbox_hosts, host, demo_bundle, tmp_path / "a", "docker-binaries")
    assert first.returncode == 0, first.stdout + first.stderr
    sandbox_hosts.run(host, ["chmod", "0644", "/usr/bin/dockerd"])

    result, record = run_steps(sandbox_hosts, host, demo_bundle, tmp_path / "b",
                               "docker-binaries")

    assert result.returncode == 0, result.stdout + result.stderr
    outcomes = {o["target"]: o for o in record["steps"][0]["outcomes"]}
    assert outcomes["/usr/bin/dockerd"]["change"] == "set mode 0755, owner root"
    assert outcomes["/usr/bin/docker"]["status"] == "unchanged"
    mode = sandbox_hosts.run(host, ["stat", "-c", "%a", "/usr/bin/dockerd"]).stdout.strip()
    assert mode == "755"


def test_bin_dir_off_the_default_path(sandbox_hosts, demo_bundle, tmp_path):
    """Binaries in a folder systemd's PATH lacks still serve: units name it explicitly."""
    host = sandbox_hosts.start("c13c")

    result, record = run_steps(sandbox_hosts, host, demo_bundle, tmp_path,
                               BINARY_STEPS + ",nvidia-toolkit,runtime,verify",
                               bin_dir="/opt/docker/bin")

    assert result.returncode == 0, result.stdout + result.stderr
    assert record["status"] == "completed"
    unit = sandbox_hosts.run(host, ["systemctl", "cat", "docker.service"]).stdout
    assert "ExecStart=/opt/docker/bin/dockerd " in unit
    assert "Environment=PATH=/opt/docker/bin:" in unit
    assert sandbox_hosts.run(host, ["test", "-e", "/usr/bin/dockerd"]).returncode == 1
    verify = load_checks(tmp_path / "outputs", host.name, record, "verify")
    runs = [c for c in verify if c["name"] == "container runs with the default runtime"]
    assert runs and runs[0]["status"] == "passed", verify


def load_checks(outputs: Path, host: str, record: dict, step: str) -> list[dict]:
    from gpurun.runner import read_summary

    entry = next(s for s in record["steps"] if s["name"] == step)
    notebook = outputs / host / record["run_id"] / entry["notebook"]
    assert error_outputs(notebook) == []
    return read_summary(notebook)["checks"]


def bundle_for_other_arch(source: Path, target: Path) -> Path:
    """Copy a bundle and relabel it for the CPU architecture this machine is not."""
    shutil.copytree(source, target)
    manifest = load_manifest(target)
    other = "aarch64" if manifest.arch == "x86_64" else "x86_64"
    files = [dataclasses.replace(f, arch=other) if f.kind == "docker-static" else f
             for f in manifest.files]
    write_manifest(target, dataclasses.replace(manifest, arch=other, files=files))
    return target


def test_wrong_arch_bundle_rejected_before_upload(sandbox_hosts, demo_bundle, tmp_path):
    host = sandbox_hosts.start("c14")
    bundle = bundle_for_other_arch(demo_bundle, tmp_path / "bundle-other-arch")

    preflight, preflight_record = run_steps(sandbox_hosts, host, bundle, tmp_path / "a",
                                            "preflight")
    binaries, binaries_record = run_steps(sandbox_hosts, host, bundle, tmp_path / "b",
                                          "docker-binaries")

    assert preflight.returncode == 1
    assert preflight_record["status"] == "failed"
    assert binaries.returncode == 1
    step = binaries_record["steps"][0]
    notebook = tmp_path / "b" / "outputs" / host.name / binaries_record["run_id"] / step["notebook"]
    errors = "\n".join(error_outputs(notebook))
    assert "x86_64" in errors, errors
    assert "aarch64" in errors, errors
    assert sandbox_hosts.run(host, ["test", "-e", "/usr/bin/dockerd"]).returncode == 1
    uploaded = sandbox_hosts.run(host, ["sh", "-c", "ls /var/lib/gpurun/bundle 2>/dev/null"])
    assert uploaded.stdout.strip() == ""
