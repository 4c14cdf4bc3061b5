"""Sandbox hosts: real systemd-nspawn hosts on this machine, reached with the real ssh client."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import SandboxHosts

from gpurun.errors import ConfigError, SandboxError
from gpurun.sandbox import SandboxHost, down, list_hosts, up
from gpurun.sandbox.apt_sources import _deb822_mirrors, _one_line_mirrors
from gpurun.sandbox.inventory import remove_inventory_host, set_inventory_host
from gpurun.sandbox.mounts import mounts_under
from gpurun.sandbox.network import NETNS_DIR, netns_name
from gpurun.sandbox.paths import resolve_state_dir

pytestmark = pytest.mark.timeout(600)


def _process_is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _netns_pids(name: str) -> list[int]:
    result = subprocess.run(
        ["ip", "netns", "pids", netns_name(name)], capture_output=True, text=True, check=True
    )
    return [int(word) for word in result.stdout.split()]


def _assert_nothing_left(host: SandboxHost, container_pids: list[int]) -> None:
    host_dir = host.root_dir.parent
    assert not (NETNS_DIR / netns_name(host.name)).exists()
    assert mounts_under(host_dir) == []
    assert not host_dir.exists()
    assert host.pid is not None and not _process_is_alive(host.pid)
    for pid in container_pids:
        assert not _process_is_alive(pid), f"container process {pid} is still running"
    assert host.address not in host.known_hosts_file.read_text()
    assert host.name not in [listed.name for listed in list_hosts()]


# Pure cases: no root and no host needed.


@pytest.mark.parametrize("name", ["BAD", "-x", "x", "a_b", "sbx1-", "../etc", "a" * 25, "1st"])
def test_up_rejects_bad_name(name: str) -> None:
    with pytest.raises(SandboxError) as raised:
        up([name])
    assert repr(name) in str(raised.value)


def test_up_rejects_unknown_init() -> None:
    with pytest.raises(SandboxError, match="'upstart'"):
        up(["sbx1"], init="upstart")


def test_down_unknown_name_lists_known(tmp_path: Path) -> None:
    (tmp_path / "hosts" / "other").mkdir(parents=True)
    with pytest.raises(SandboxError) as raised:
        down(["nope"], state_dir=tmp_path)
    assert "nope" in str(raised.value)
    assert "Known hosts: other" in str(raised.value)


def test_state_dir_with_comma_rejected(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="a,b"):
        resolve_state_dir(tmp_path / "a,b")


def test_inventory_keeps_other_hosts(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "all:\n  vars:\n    gpurun_bundle: /srv/bundle\n"
        "  hosts:\n    gpu1:\n      ansible_host: gpu1.example\n"
    )
    set_inventory_host(inventory, "sbx1", {"ansible_host": "10.213.1.2"})
    document = yaml.safe_load(inventory.read_text())
    assert document["all"]["vars"] == {"gpurun_bundle": "/srv/bundle"}
    assert document["all"]["hosts"]["gpu1"] == {"ansible_host": "gpu1.example"}
    assert document["all"]["hosts"]["sbx1"] == {"ansible_host": "10.213.1.2"}

    remove_inventory_host(inventory, "sbx1")
    document = yaml.safe_load(inventory.read_text())
    assert list(document["all"]["hosts"]) == ["gpu1"]


def test_inventory_removed_when_empty(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    set_inventory_host(inventory, "sbx1", {"ansible_host": "10.213.1.2"})
    remove_inventory_host(inventory, "sbx1")
    assert not inventory.exists()


def test_invalid_inventory_rejected_with_path(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("all: [unclosed\n")
    with pytest.raises(ConfigError, match=str(inventory)):
        set_inventory_host(inventory, "sbx1", {})


def test_mirror_from_deb822_sources() -> None:
    text = (
        "Types: deb\nURIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "Types: deb deb-src\n# a comment\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main contrib\n"
    )
    assert _deb822_mirrors(text, "bookworm") == ["http://mirror.example/debian"]


def test_mirror_from_one_line_sources() -> None:
    text = (
        "deb-src http://src.example/debian bookworm main\n"
        "# deb http://old.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n"
    )
    assert _one_line_mirrors(text, "bookworm") == ["http://mirror.example/debian"]


# Real hosts.


@pytest.mark.sandbox
def test_host_answers_ssh_with_strict_key_check(sandbox_hosts: SandboxHosts) -> None:
    host = sandbox_hosts.start("boot")
    assert "StrictHostKeyChecking=yes" in host.ssh_argv([])
    assert f"UserKnownHostsFile={host.known_hosts_file}" in host.ssh_argv([])

    result = sandbox_hosts.run(host, ["hostname"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == host.name


@pytest.mark.sandbox
def test_ssh_rejects_wrong_host_key(sandbox_hosts: SandboxHosts, tmp_path: Path) -> None:
    host = sandbox_hosts.start("boot")
    other_key = tmp_path / "other_host_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True
    )
    key_type, key_data = other_key.with_suffix(".pub").read_text().split()[:2]
    wrong_known_hosts = tmp_path / "known_hosts"
    wrong_known_hosts.write_text(f"{host.address} {key_type} {key_data}\n")

    argv = [
        f"UserKnownHostsFile={wrong_known_hosts}"
        if word.startswith("UserKnownHostsFile=")
        else word
        for word in host.ssh_argv(["true"])
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr


@pytest.mark.sandbox
def test_ssh_argv_keeps_words(sandbox_hosts: SandboxHosts) -> None:
    host = sandbox_hosts.start("boot")
    words = ["a b", "it's", "$HOME", "-V", "x;y"]
    result = sandbox_hosts.run(host, ["printf", "%s\\n", *words])
    assert result.stdout.splitlines() == words


@pytest.mark.sandbox
def test_systemd_host_is_running(sandbox_hosts: SandboxHosts) -> None:
    host = sandbox_hosts.start("boot")
    result = sandbox_hosts.run(host, ["systemctl", "is-system-running"])
    assert result.stdout.strip() in ("running", "degraded")

    remount = sandbox_hosts.run(host, ["systemctl", "is-active", "gpurun-cgroup-remount"])
    assert remount.stdout.strip() == "active"


@pytest.mark.sandbox
def test_cgroup_controllers_writable(sandbox_hosts: SandboxHosts) -> None:
    host = sandbox_hosts.start("boot")
    mounts = sandbox_hosts.run(host, ["cat", "/proc/self/mounts"]).stdout
    cgroup_v1 = [line.split() for line in mounts.splitlines() if line.split()[2] == "cgroup"]
    assert cgroup_v1, mounts
    for _, mount_point, _, options, *_ in cgroup_v1:
        assert options.startswith("rw"), f"{mount_point} is mounted {options}"


@pytest.mark.sandbox
def test_host_runs_iptables(sandbox_hosts: SandboxHosts) -> None:
    host = sandbox_hosts.start("boot")
    result = sandbox_hosts.run(host, ["iptables", "-L", "-n"])
    assert result.returncode == 0, result.stderr
    assert "Chain INPUT" in result.stdout


@pytest.mark.sandbox
def test_docker_data_is_plain_bind_mount(sandbox_hosts: SandboxHosts) -> None:
    host = sandbox_hosts.start("boot")
    file_systems = sandbox_hosts.run(host, ["stat", "-f", "-c", "%T", "/", "/var/lib/docker"])
    root_type, docker_type = file_systems.stdout.split()
    assert root_type == "overlayfs"
    assert docker_type != "overlayfs"

    sandbox_hosts.run(host, ["touch", "/var/lib/docker/written-inside"])
    assert (host.root_dir.parent / "docker" / "written-inside").exists()


@pytest.mark.sandbox
def test_host_without_systemd(sandbox_hosts: SandboxHosts) -> None:
    host = sandbox_hosts.start("nosd", init="none")
    assert host.init == "none"

    result = sandbox_hosts.run(host, ["systemctl", "is-system-running"])
    assert result.stdout.strip() == "offline"
    assert sandbox_hosts.run(host, ["cat", "/proc/1/comm"]).stdout.strip() == "tini"
    assert sandbox_hosts.run(host, ["iptables", "-L", "-n"]).returncode == 0


@pytest.mark.sandbox
def test_hosts_get_different_addresses(sandbox_hosts: SandboxHosts) -> None:
    first = sandbox_hosts.start("boot")
    second = sandbox_hosts.start("second")
    assert first.address != second.address
    assert sandbox_hosts.run(second, ["hostname"]).stdout.strip() == second.name

    # Each host has a route only to its own link to the control node.
    route = sandbox_hosts.run(first, ["ip", "-4", "route"]).stdout
    assert route.split()[0] == first.address.rsplit(".", 1)[0] + ".0/24"
    assert "default" not in route


@pytest.mark.sandbox
def test_up_of_running_host_returns_it(sandbox_hosts: SandboxHosts) -> None:
    host = sandbox_hosts.start("boot")
    again = sandbox_hosts.start("boot")
    assert again == host


@pytest.mark.sandbox
def test_inventory_lists_host(sandbox_hosts: SandboxHosts) -> None:
    host = sandbox_hosts.start("boot")
    document = yaml.safe_load(sandbox_hosts.inventory.read_text())
    assert document["all"]["hosts"][host.name] == {
        "ansible_host": host.address,
        "ansible_port": 22,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(host.key_file),
        "gpurun_known_hosts_file": str(host.known_hosts_file),
        "gpurun_sandbox_init": "systemd",
    }


@pytest.mark.sandbox
def test_down_leaves_nothing(sandbox_hosts: SandboxHosts) -> None:
    host = sandbox_hosts.start("gone")
    container_pids = _netns_pids(host.name)
    assert container_pids

    started = time.monotonic()
    sandbox_hosts.stop(host)
    assert time.monotonic() - started < 30
    _assert_nothing_left(host, container_pids)
    assert host.name not in yaml.safe_load(sandbox_hosts.inventory.read_text())["all"]["hosts"]


@pytest.mark.sandbox
def test_down_after_nspawn_killed(sandbox_hosts: SandboxHosts) -> None:
    host = sandbox_hosts.start("killed")
    container_pids = _netns_pids(host.name)
    assert host.pid is not None
    os.kill(host.pid, signal.SIGKILL)

    deadline = time.monotonic() + 10
    while [h for h in list_hosts() if h.name == host.name and h.running]:
        assert time.monotonic() < deadline, "list_hosts still reports the host as running"
        time.sleep(0.2)

    sandbox_hosts.stop(host)
    _assert_nothing_left(host, container_pids)


@pytest.mark.sandbox
def test_failed_up_leaves_nothing(sandbox_base: Path, tmp_path: Path) -> None:
    # The inventory is written once the host is up, so an invalid one fails `up` half-way.
    broken_inventory = tmp_path / "inventory.yaml"
    broken_inventory.write_text("all: [unclosed\n")
    name = f"t{os.getpid() % 1000}-halfway"

    with pytest.raises(ConfigError):
        up([name], inventory=broken_inventory)

    state = resolve_state_dir()
    assert not state.host(name).dir.exists()
    assert not (NETNS_DIR / netns_name(name)).exists()
    assert mounts_under(state.host(name).dir) == []
    assert name not in [host.name for host in list_hosts()]
