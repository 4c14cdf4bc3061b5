"""A Docker that gpurun did not install: Debian's docker.io package, and one started by hand.

gpurun must refuse to install beside it, and with replace_existing stop it cleanly first, so
that exactly one dockerd runs afterwards.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from chain import DEB_CACHE, gpurun_run, run_records, write_inventory

from gpurun.bundle.manifest import load_manifest

pytestmark = pytest.mark.sandbox

PACKAGES = ["docker.io", "containerd", "runc", "tini"]
FAKE_DOCKER = "#!/bin/sh\necho 'docker installed by hand'\n"


def install_docker_io(sandbox_hosts, host) -> None:
    """Install Debian's docker.io with dpkg, as an operator would from a local mirror."""
    folder = host.root_dir / "var" / "tmp" / "debs"
    folder.mkdir(parents=True)
    for name in PACKAGES:
        [deb] = DEB_CACHE.glob(f"{name}_*.deb")
        shutil.copy(deb, folder / deb.name)
    # The group saves docker.io's postinst from needing adduser; lsb-base is a transitional
    # package in Debian 12. --force-depends covers both missing dependencies.
    sandbox_hosts.run(host, ["groupadd", "--system", "docker"])
    result = sandbox_hosts.run(host, ["sh", "-c", "dpkg -i --force-depends /var/tmp/debs/*.deb"],
                               timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for_api(sandbox_hosts, host)


def wait_for_api(sandbox_hosts, host, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while sandbox_hosts.run(host, ["docker", "version"]).returncode != 0:
        assert time.monotonic() < deadline, "dockerd did not respond"
        time.sleep(1)


def dockerd_pids(sandbox_hosts, host) -> list[int]:
    return [int(pid) for pid in sandbox_hosts.run(host, ["pidof", "dockerd"]).stdout.split()]


@pytest.fixture(scope="module")
def packaged(sandbox_hosts, demo_bundle, tmp_path_factory):
    """A systemd host running Debian's docker.io, before gpurun touches it."""
    host = sandbox_hosts.start("pkgdocker")
    install_docker_io(sandbox_hosts, host)
    return host, tmp_path_factory.mktemp("pkgdocker")


def test_packaged_docker_runs_before(packaged, sandbox_hosts):
    host = packaged[0]
    fragment = sandbox_hosts.run(host, ["systemctl", "show", "docker.service", "-p",
                                        "FragmentPath", "--value"]).stdout.strip()
    assert fragment == "/lib/systemd/system/docker.service"
    assert len(dockerd_pids(sandbox_hosts, host)) == 1


def test_preflight_blocks_packaged_docker(packaged, demo_bundle):
    host, folder = packaged
    inventory = write_inventory(folder / "plain.yaml", host, bundle_dir=str(demo_bundle))
    result = gpurun_run(inventory, folder / "outputs-plain", "--steps",
                        "preflight,docker-binaries")
    assert result.returncode != 0
    [record] = run_records(folder / "outputs-plain", host.name)
    assert [s["name"] for s in record["steps"]] == ["preflight"]
    error = record["steps"][0]["error"]
    assert "existing Docker" in error
    assert "docker.socket, docker.service, containerd.service" in error
    assert "replace_existing" in error


@pytest.fixture(scope="module")
def replaced(packaged, sandbox_hosts, demo_bundle):
    """The packaged host after two full runs with replace_existing."""
    host, folder = packaged
    before = dockerd_pids(sandbox_hosts, host)
    inventory = write_inventory(folder / "replace.yaml", host, bundle_dir=str(demo_bundle),
                                replace_existing=True)
    outputs = folder / "outputs-replace"
    first = gpurun_run(inventory, outputs)
    assert first.returncode == 0, first.stdout + first.stderr
    second = gpurun_run(inventory, outputs)
    assert second.returncode == 0, second.stdout + second.stderr
    first_record, second_record = run_records(outputs, host.name)
    return host, before, first_record, second_record


def test_replace_leaves_one_dockerd(replaced, sandbox_hosts):
    host, before, _, _ = replaced
    pids = dockerd_pids(sandbox_hosts, host)
    assert len(pids) == 1, pids
    assert pids != before
    cgroup = sandbox_hosts.run(host, ["cat", f"/proc/{pids[0]}/cgroup"]).stdout
    assert "docker.service" in cgroup
    fragment = sandbox_hosts.run(host, ["systemctl", "show", "docker.service", "-p",
                                        "FragmentPath", "--value"]).stdout.strip()
    assert fragment == "/etc/systemd/system/docker.service"


def test_replace_journals_disabled_units(replaced, sandbox_hosts):
    host, _, first, _ = replaced
    journal = sandbox_hosts.run(
        host, ["cat", f"/var/lib/gpurun/runs/{first['run_id']}/changes.jsonl"]).stdout
    entries = [json.loads(line) for line in journal.splitlines()]
    disabled = [e["path"] for e in entries if e["action"] == "service-disabled"]
    assert disabled == ["unit docker.socket", "unit docker.service", "unit containerd.service"]


def test_replaced_host_runs_nvidia_default(replaced, sandbox_hosts, demo_bundle):
    host = replaced[0]
    info = json.loads(sandbox_hosts.run(host, ["docker", "info", "--format", "{{json .}}"]).stdout)
    assert info["DefaultRuntime"] == "nvidia"
    image = load_manifest(demo_bundle).test_image()
    assert image is not None
    result = sandbox_hosts.run(host, ["docker", "run", "--rm", str(image.image), "echo", "hi"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hi"


def test_replace_second_run_changes_nothing(replaced, sandbox_hosts):
    host, _, _, second = replaced
    for step in second["steps"]:
        assert step["status"] == "completed", step
        assert step["changed"] is False, step
    assert "docker.io" in sandbox_hosts.run(host, ["dpkg-query", "-W", "docker.io"]).stdout


# A host without systemd where someone unpacked a static Docker into /usr/local/bin, started
# it by hand, and put a docker command of their own into /usr/bin.


@pytest.fixture(scope="module")
def by_hand(sandbox_hosts, demo_bundle, tmp_path_factory):
    host = sandbox_hosts.start("handdocker", init="none")
    tarball = load_manifest(demo_bundle).docker_tarball()
    shutil.copy(demo_bundle / tarball.path, host.root_dir / "var" / "tmp" / "docker.tgz")
    (host.root_dir / "usr" / "bin" / "docker").write_text(FAKE_DOCKER)
    (host.root_dir / "usr" / "bin" / "docker").chmod(0o755)
    script = ("set -e; tar -xzf /var/tmp/docker.tgz -C /var/tmp; cp /var/tmp/docker/* /usr/local/bin/; "
              "setsid /usr/local/bin/containerd </dev/null >/var/log/hand-containerd.log 2>&1 & "
              "sleep 2; setsid /usr/local/bin/dockerd --containerd=/run/containerd/containerd.sock"
              " </dev/null >/var/log/hand-dockerd.log 2>&1 &")
    result = sandbox_hosts.run(host, ["sh", "-c", script])
    assert result.returncode == 0, result.stderr
    wait_for_api(sandbox_hosts, host)
    return host, tmp_path_factory.mktemp("handdocker")


def test_hand_started_docker_blocks(by_hand, sandbox_hosts, demo_bundle):
    host, folder = by_hand
    [pid] = dockerd_pids(sandbox_hosts, host)
    inventory = write_inventory(folder / "plain.yaml", host, bundle_dir=str(demo_bundle))
    result = gpurun_run(inventory, folder / "outputs-plain", "--steps", "docker-binaries")
    assert result.returncode != 0
    [record] = run_records(folder / "outputs-plain", host.name)
    error = record["steps"][0]["error"]
    assert f"running dockerd pid {pid} (/usr/local/bin/dockerd)" in error
    assert "a static Docker gpurun did not install: /usr/bin/docker" in error
    assert dockerd_pids(sandbox_hosts, host) == [pid]
    assert sandbox_hosts.run(host, ["cat", "/usr/bin/docker"]).stdout == FAKE_DOCKER


def test_replace_stops_hand_started_docker(by_hand, sandbox_hosts, demo_bundle):
    host, folder = by_hand
    [old] = dockerd_pids(sandbox_hosts, host)
    inventory = write_inventory(folder / "replace.yaml", host, bundle_dir=str(demo_bundle),
                                replace_existing=True)
    outputs = folder / "outputs-replace"
    result = gpurun_run(inventory, outputs, "--steps", "docker-binaries,docker-service")

    assert result.returncode == 0, result.stdout + result.stderr
    [record] = run_records(outputs, host.name)
    log = sandbox_hosts.run(host, ["cat", "/var/log/hand-dockerd.log"]).stdout
    assert "Processing signal 'terminated'" in log
    pids = dockerd_pids(sandbox_hosts, host)
    assert len(pids) == 1, pids
    assert old not in pids
    managed = sandbox_hosts.run(host, ["cat", "/run/gpurun/dockerd.pid"]).stdout.strip()
    assert pids == [int(managed)]
    backup = f"/var/lib/gpurun/runs/{record['run_id']}/backup/usr/bin/docker"
    assert sandbox_hosts.run(host, ["cat", backup]).stdout == FAKE_DOCKER
    assert sandbox_hosts.run(host, ["docker", "version"]).returncode == 0


def test_hand_unpacked_binaries_left_in_place(by_hand, sandbox_hosts):
    host, folder = by_hand
    assert Path(host.root_dir / "usr/local/bin/dockerd").exists()
    [record] = run_records(folder / "outputs-replace", host.name)
    outcomes = record["steps"][0]["outcomes"]
    stops = [o for o in outcomes if o["change"] == "SIGTERM, then wait for it to exit"]
    assert [o["target"].split()[0] for o in stops] == ["dockerd", "containerd"]
