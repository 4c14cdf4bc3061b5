"""Docker on a host without systemd: sshd runs under tini, so gpurun manages the daemons itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chain import (
    assert_installed_without_errors,
    assert_nothing_changed,
    converge_twice,
    gpurun_run,
    notebook_text,
    run_records,
    write_inventory,
)

from gpurun.bundle.manifest import load_manifest
from gpurun.errors import GpurunError
from gpurun.host import Host, HostSpec, connect
from gpurun.operations import background
from gpurun.sandbox.users import add_sudo_user

pytestmark = pytest.mark.sandbox

TRACE = "/var/log/gpurun-standin/nvidia-container-runtime.log"
SERVICE_STEPS = "docker-binaries,docker-service"
# The process cases install into a folder off every default PATH, which sudo resets.
BIN_DIR = "/opt/docker/bin"
# Prints the pid of the sshd that listens: the one whose parent is the host's PID 1 (tini).
LISTENER_SSHD = ('for pid in $(pidof sshd); do '
                 '[ "$(cut -d" " -f4 "/proc/$pid/stat")" = 1 ] && echo "$pid"; done')


@pytest.fixture(scope="module")
def converged(sandbox_hosts, demo_bundle, tmp_path_factory):
    """A host without systemd that went through the main job twice."""
    return converge_twice(sandbox_hosts, "nosd", tmp_path_factory.mktemp("nosd-job"),
                          start_options={"init": "none"}, bundle_dir=str(demo_bundle))


def pid_from_file(sandbox_hosts, host, path: str) -> int:
    return int(sandbox_hosts.run(host, ["cat", path]).stdout.strip())


def exe_of(sandbox_hosts, host, pid: int) -> str:
    return sandbox_hosts.run(host, ["readlink", f"/proc/{pid}/exe"]).stdout.strip()


def cmdline_of(sandbox_hosts, host, pid: int) -> list[str]:
    text = sandbox_hosts.run(host, ["cat", f"/proc/{pid}/cmdline"]).stdout
    return [word for word in text.split("\0") if word]


def test_host_has_no_systemd(converged, sandbox_hosts):
    host = converged[0]
    assert sandbox_hosts.run(host, ["test", "-d", "/run/systemd/system"]).returncode != 0
    assert sandbox_hosts.run(host, ["cat", "/proc/1/comm"]).stdout.strip() == "tini"


def test_chain_completes_without_systemd(converged):
    host, outputs, first, _ = converged
    assert_installed_without_errors(host, outputs, first)


def test_second_run_changes_nothing(converged):
    assert_nothing_changed(converged[3])


def test_daemons_named_by_pid_files(converged, sandbox_hosts):
    host = converged[0]
    for daemon in background.DAEMONS:
        pid = pid_from_file(sandbox_hosts, host, daemon.pid_file)
        assert exe_of(sandbox_hosts, host, pid) == f"/usr/bin/{daemon.name}"
        log = sandbox_hosts.run(host, ["cat", daemon.log_file]).stdout
        assert "gpurun starts: /usr/bin/" + daemon.name in log
    pids = sandbox_hosts.run(host, ["pidof", "dockerd"]).stdout.split()
    assert len(pids) == 1, pids


def test_nvidia_runtime_default_and_used(converged, sandbox_hosts, demo_bundle):
    host = converged[0]
    info = json.loads(sandbox_hosts.run(host, ["docker", "info", "--format", "{{json .}}"]).stdout)
    assert "nvidia" in info["Runtimes"]
    assert info["DefaultRuntime"] == "nvidia"
    image = load_manifest(demo_bundle).test_image()
    assert image is not None
    before = len(sandbox_hosts.run(host, ["cat", TRACE]).stdout.splitlines())
    result = sandbox_hosts.run(host, ["docker", "run", "--rm", str(image.image), "echo", "hi"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hi"
    assert len(sandbox_hosts.run(host, ["cat", TRACE]).stdout.splitlines()) > before


def test_runtime_set_in_one_place(converged, sandbox_hosts):
    host = converged[0]
    config = json.loads(sandbox_hosts.run(host, ["cat", "/etc/docker/daemon.json"]).stdout)
    assert config["default-runtime"] == "nvidia"
    pid = pid_from_file(sandbox_hosts, host, background.DOCKERD.pid_file)
    argv = cmdline_of(sandbox_hosts, host, pid)
    assert not [word for word in argv if "runtime" in word], argv


# The process cases share one host, logged in as a sudo user, so that the daemons are also
# started and stopped through sudo.


@pytest.fixture(scope="module")
def managed(sandbox_hosts, demo_bundle, tmp_path_factory):
    """A host without systemd with gpurun's daemons, run by a sudo user without a password."""
    root_host = sandbox_hosts.start("nosd-proc", init="none")
    host = add_sudo_user(root_host, "ops")
    folder = tmp_path_factory.mktemp("nosd-proc")
    inventory = write_inventory(folder / "inventory.yaml", host, bundle_dir=str(demo_bundle),
                                ansible_become=True, bin_dir=BIN_DIR)
    result = gpurun_run(inventory, folder / "outputs", "--steps", SERVICE_STEPS)
    assert result.returncode == 0, result.stdout + result.stderr
    return root_host, inventory, folder


def root_login(host) -> Host:
    spec = HostSpec(name=host.name, address=host.address, port=host.port, user="root",
                    key_file=str(host.key_file), known_hosts_file=str(host.known_hosts_file))
    return Host(spec=spec, machine=connect(spec), run_id="test-no-systemd")


def test_sudo_user_started_daemons_as_root(managed, sandbox_hosts):
    host = managed[0]
    for daemon in background.DAEMONS:
        pid = pid_from_file(sandbox_hosts, host, daemon.pid_file)
        owner = sandbox_hosts.run(host, ["stat", "-c", "%U", f"/proc/{pid}"]).stdout.strip()
        assert owner == "root", daemon.name
        assert exe_of(sandbox_hosts, host, pid) == f"{BIN_DIR}/{daemon.name}"


def test_stale_pid_file_naming_sshd(managed, sandbox_hosts):
    host, inventory, folder = managed
    old = pid_from_file(sandbox_hosts, host, background.DOCKERD.pid_file)
    # A crash: dockerd dies without removing its pid file, and the pid now names sshd.
    sandbox_hosts.run(host, ["kill", "-KILL", str(old)])
    sshd = int(sandbox_hosts.run(host, ["sh", "-c", LISTENER_SSHD]).stdout.split()[0])
    sandbox_hosts.run(host, ["sh", "-c", f"echo {sshd} > {background.DOCKERD.pid_file}"])

    outputs = folder / "outputs-stale"
    result = gpurun_run(inventory, outputs, "--steps", "docker-service")

    assert result.returncode == 0, result.stdout + result.stderr
    [record] = run_records(outputs, host.name)
    outcomes = {o["target"]: o for o in record["steps"][0]["outcomes"]}
    assert outcomes["start dockerd"]["status"] == "changed"
    assert f"pid {sshd} is now /usr/sbin/sshd, not dockerd" in outcomes["start dockerd"]["reason"]
    assert outcomes["start containerd"]["status"] == "unchanged"
    assert sandbox_hosts.run(host, ["kill", "-0", str(sshd)]).returncode == 0
    new = pid_from_file(sandbox_hosts, host, background.DOCKERD.pid_file)
    assert exe_of(sandbox_hosts, host, new) == f"{BIN_DIR}/dockerd"


def test_restart_for_new_flags_is_graceful(managed, sandbox_hosts):
    host, inventory, folder = managed
    old = pid_from_file(sandbox_hosts, host, background.DOCKERD.pid_file)
    sandbox_hosts.run(host, ["sh", "-c", "mkdir -p /etc/gpurun && echo --log-level=info > "
                                         + background.DOCKERD_FLAGS_FILE])

    outputs = folder / "outputs-flags"
    result = gpurun_run(inventory, outputs, "--steps", "docker-service")

    assert result.returncode == 0, result.stdout + result.stderr
    [record] = run_records(outputs, host.name)
    outcomes = {o["target"]: o for o in record["steps"][0]["outcomes"]}
    assert outcomes["stop dockerd"]["change"] == "SIGTERM, then wait for it to exit"
    assert "--log-level=info" in outcomes["stop dockerd"]["reason"]
    text = notebook_text(outputs / host.name / record["run_id"] / record["steps"][0]["notebook"])
    assert f"kill -TERM {old}" in text
    assert "kill -KILL" not in text
    log = sandbox_hosts.run(host, ["cat", background.DOCKERD.log_file]).stdout
    assert "Processing signal 'terminated'" in log
    new = pid_from_file(sandbox_hosts, host, background.DOCKERD.pid_file)
    assert new != old
    assert "--log-level=info" in cmdline_of(sandbox_hosts, host, new)


def test_stop_waits_and_never_kills_unasked(managed, sandbox_hosts):
    host = managed[0]
    login = root_login(host)
    pid = pid_from_file(sandbox_hosts, host, background.DOCKERD.pid_file)
    # A stopped process keeps SIGTERM pending, like a dockerd that hangs on shutdown.
    sandbox_hosts.run(host, ["kill", "-STOP", str(pid)])

    with pytest.raises(GpurunError, match="still running 3 s after SIGTERM"):
        background.stop(login, background.DOCKERD, timeout=3)
    assert sandbox_hosts.run(host, ["kill", "-0", str(pid)]).returncode == 0

    background.stop(login, background.DOCKERD, timeout=3, kill_after_timeout=True)
    assert sandbox_hosts.run(host, ["kill", "-0", str(pid)]).returncode != 0
    assert ["kill", "-KILL", str(pid)] in [c.argv for c in login.commands]
    assert [c.action for c in login.changes] == ["process-killed"]


def test_daemons_started_again_after_kill(managed, sandbox_hosts):
    host, inventory, folder = managed
    outputs = folder / "outputs-again"
    result = gpurun_run(inventory, outputs, "--steps", "docker-service")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sandbox_hosts.run(host, [f"{BIN_DIR}/docker", "version"]).returncode == 0


def run_steps(host, bundle: Path, folder: Path, steps: str, **variables) -> dict:
    """Run the steps with the variables and return the step records by name."""
    folder.mkdir(parents=True, exist_ok=True)
    inventory = write_inventory(folder / "inventory.yaml", host, bundle_dir=str(bundle),
                                **variables)
    result = gpurun_run(inventory, folder / "outputs", "--steps", steps)
    assert result.returncode == 0, result.stdout + result.stderr
    [record] = run_records(folder / "outputs", host.name)
    return {step["name"]: step for step in record["steps"]}


def test_runtime_flags_way_and_back(converged, sandbox_hosts, demo_bundle, tmp_path):
    host = converged[0]
    flags = run_steps(host, demo_bundle, tmp_path / "flags", "runtime", runtime_config="flags")
    assert flags["runtime"]["changed"] is True
    written = sandbox_hosts.run(host, ["cat", background.DOCKERD_RUNTIME_FLAGS_FILE]).stdout
    assert "--default-runtime=nvidia" in written.splitlines()
    config = json.loads(sandbox_hosts.run(host, ["cat", "/etc/docker/daemon.json"]).stdout)
    assert "runtimes" not in config
    assert "default-runtime" not in config
    pid = pid_from_file(sandbox_hosts, host, background.DOCKERD.pid_file)
    assert "--default-runtime=nvidia" in cmdline_of(sandbox_hosts, host, pid)
    default = sandbox_hosts.run(host, ["docker", "info", "--format", "{{.DefaultRuntime}}"])
    assert default.stdout.strip() == "nvidia"

    # docker-service starts dockerd with the same flags file, so it has nothing to restart.
    service = run_steps(host, demo_bundle, tmp_path / "service", "docker-service")
    assert service["docker-service"]["changed"] is False
    assert pid_from_file(sandbox_hosts, host, background.DOCKERD.pid_file) == pid

    back = run_steps(host, demo_bundle, tmp_path / "back", "runtime")
    assert back["runtime"]["changed"] is True
    gone = sandbox_hosts.run(host, ["test", "-e", background.DOCKERD_RUNTIME_FLAGS_FILE])
    assert gone.returncode != 0
    config = json.loads(sandbox_hosts.run(host, ["cat", "/etc/docker/daemon.json"]).stdout)
    assert config["default-runtime"] == "nvidia"
    pid = pid_from_file(sandbox_hosts, host, background.DOCKERD.pid_file)
    assert not [word for word in cmdline_of(sandbox_hosts, host, pid) if "runtime" in word]
