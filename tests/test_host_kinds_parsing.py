"""Pure cases for the host kinds: pid files, an existing Docker, rpm installs, sudo passwords."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from plumbum import local

from gpurun.errors import ConnectionFailed, PreflightError
from gpurun.facts import existing_docker as existing_facts
from gpurun.facts import processes
from gpurun.host import Host, HostSpec
from gpurun.host.sudo import read_sudo_password
from gpurun.operations import background, packages
from gpurun.steps import background_service, existing_docker

DOCKERD_ARGV = ["/usr/bin/dockerd", "--pidfile=/run/gpurun/dockerd.pid",
                "--containerd=/run/containerd/containerd.sock"]


def probe_output(first: str, exe: str = "", argv: list[str] | None = None) -> str:
    return "\n".join([first, exe, *(argv or [])]) + "\n"


@pytest.mark.parametrize(
    ("output", "status", "detail"),
    [
        ("absent\n", "absent", "no pid file"),
        ("invalid abc\n", "stale", "contains 'abc', not a pid"),
        ("gone 4242\n", "stale", "no process 4242"),
        (probe_output("live 77 Z", "/usr/bin/dockerd"), "stale",
         "process 77 has exited (zombie)"),
        (probe_output("live 12 S", "/usr/sbin/sshd", ["sshd: /usr/sbin/sshd -D"]), "stale",
         "pid 12 is now /usr/sbin/sshd, not dockerd"),
        (probe_output("live 300 S", "/usr/bin/dockerd", DOCKERD_ARGV), "running",
         "pid 300, /usr/bin/dockerd"),
    ],
)
def test_pid_probe_parsed(output, status, detail):
    facts = processes.parse_pid_probe("/run/gpurun/dockerd.pid", "dockerd", output)
    assert facts.status == status
    assert facts.detail == detail


def test_pid_probe_notes_replaced_binary():
    output = probe_output("live 300 S", "/usr/bin/dockerd (deleted)", DOCKERD_ARGV)
    facts = processes.parse_pid_probe("/run/gpurun/dockerd.pid", "dockerd", output)
    assert facts.running
    assert facts.exe == "/usr/bin/dockerd"
    assert facts.exe_replaced
    assert facts.argv == DOCKERD_ARGV


def test_dockerd_argv_adds_extra_flags():
    argv = background.DOCKERD.argv("/opt/docker", ["--default-runtime=nvidia"])
    assert argv == ["/opt/docker/dockerd", "--pidfile=/run/gpurun/dockerd.pid",
                    "--containerd=/run/containerd/containerd.sock", "--default-runtime=nvidia"]
    assert background.CONTAINERD.argv("/opt/docker", []) == ["/opt/docker/containerd"]


def running(exe: str, argv: list[str], replaced: bool = False) -> processes.PidFileFacts:
    return processes.PidFileFacts("/run/gpurun/dockerd.pid", "running", 300, exe, replaced, argv)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (running("/usr/bin/dockerd", DOCKERD_ARGV), None),
        (processes.PidFileFacts("/run/gpurun/dockerd.pid", "stale", 12), None),
        (running("/usr/local/bin/dockerd", DOCKERD_ARGV),
         "runs /usr/local/bin/dockerd, not /usr/bin/dockerd"),
        (running("/usr/bin/dockerd", DOCKERD_ARGV, replaced=True),
         "/usr/bin/dockerd was replaced after the daemon started"),
        (running("/usr/bin/dockerd", DOCKERD_ARGV[:2]),
         "started as `/usr/bin/dockerd --pidfile=/run/gpurun/dockerd.pid`, expected `"
         + " ".join(DOCKERD_ARGV) + "`"),
    ],
)
def test_restart_reason(state, reason):
    assert background_service.restart_reason(state, DOCKERD_ARGV) == reason


def test_dpkg_search_parsed():
    text = ("docker.io: /usr/bin/dockerd\n"
            "containerd, other: /usr/bin/containerd\n"
            "diversion by foo from: /usr/bin/runc\n")
    assert existing_facts.parse_dpkg_search(text) == {
        "/usr/bin/dockerd": "docker.io", "/usr/bin/containerd": "containerd"}


SNAP_HEADER = "Name    Version  Rev   Tracking       Publisher   Notes\n"


@pytest.mark.parametrize(
    ("text", "version"),
    [
        (SNAP_HEADER + "docker  24.0.5   2915  latest/stable  canonical✓  -\n", "24.0.5"),
        (SNAP_HEADER + "docker  24.0.5   2915  latest/stable  canonical✓  disabled\n", None),
        ("", None),
    ],
)
def test_snap_list_parsed(text, version):
    assert existing_facts.parse_snap_list(text) == version


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("0::/system.slice/docker.service\n", "docker.service"),
        ("12:pids:/system.slice/containerd.service\n1:name=systemd:/user.slice/session-3.scope\n",
         "containerd.service"),
        ("0::/\n", None),
    ],
)
def test_cgroup_unit_parsed(text, unit):
    assert existing_facts.parse_cgroup_unit(text) == unit


def test_journal_checksums_last_entry_wins():
    text = ('{"path": "/usr/bin/dockerd", "sha256_after": "aaa"}\n'
            'not json\n'
            '{"path": "/usr/bin/dockerd", "sha256_after": "bbb"}\n'
            '{"path": "/etc/docker/daemon.json", "sha256_after": null}\n')
    assert existing_facts.parse_journal_checksums(text) == {"/usr/bin/dockerd": "bbb"}


def test_leftover_package_is_no_conflict():
    existing = existing_facts.ExistingDocker(packages={"docker.io": "20.10.24"})
    assert existing.conflicts() == []
    assert len(existing.leftovers()) == 1
    assert "docker.io 20.10.24" in existing.leftovers()[0]


def a_host() -> Host:
    # A host object for plans only: nothing in these cases runs a command.
    return Host(spec=HostSpec(name="h1", address="local"), machine=local, run_id="test")


def conflicting_docker() -> existing_facts.ExistingDocker:
    return existing_facts.ExistingDocker(
        packages={"docker-ce": "27.1.1"},
        foreign_units=["docker.socket", "docker.service"],
        static_binaries=["/usr/bin/docker"],
        daemons=[existing_facts.ForeignDaemon(99, "dockerd", "/usr/local/bin/dockerd", None)],
        snap="24.0.5",
    )


def test_conflicts_block_without_replace():
    findings = existing_docker.findings(conflicting_docker(), replace_existing=False)
    assert {f.level for f in findings} == {"blocking"}
    assert len(findings) == 4
    with pytest.raises(PreflightError, match="replace_existing: true") as raised:
        existing_docker.actions(a_host(), conflicting_docker(), replace_existing=False)
    assert "/usr/local/bin/dockerd" in str(raised.value)


def test_conflicts_stopped_with_replace():
    findings = existing_docker.findings(conflicting_docker(), replace_existing=True)
    assert {f.level for f in findings} == {"warning"}
    actions = existing_docker.actions(a_host(), conflicting_docker(), replace_existing=True)
    changes = [action.change for action in actions]
    assert changes == ["systemctl disable --now", "SIGTERM, then wait for it to exit",
                       "snap stop --disable docker",
                       "check that no other containerd or dockerd runs"]
    assert all(action.needed for action in actions)


def test_no_docker_is_one_ok_finding():
    findings = existing_docker.findings(existing_facts.ExistingDocker(), replace_existing=False)
    assert [(f.level, f.detail) for f in findings] == [("ok", "none besides gpurun's own")]


def test_rpm_install_forces_only_when_asked():
    rpms = [PurePosixPath(f"/b/{name}.rpm") for name in ("lib", "tools", "base", "tk")]
    plain = packages.install_command(rpms, "rpm", forced=False)
    assert plain == ["rpm", "-Uvh", "--replacepkgs", "/b/lib.rpm", "/b/tools.rpm",
                     "/b/base.rpm", "/b/tk.rpm"]
    forced = packages.install_command(rpms, "rpm", forced=True)
    assert "--nodeps" in forced
    assert "--force" in forced
    assert forced[-4:] == plain[-4:]


def test_sudo_password_read_from_named_variable(monkeypatch):
    monkeypatch.setenv("GPURUN_TEST_PW", "s3cret")
    spec = HostSpec(name="h1", address="10.0.0.1", user="ops", become=True,
                    sudo_password_env="GPURUN_TEST_PW")
    assert read_sudo_password(spec) == "s3cret"


def test_sudo_password_variable_unset(monkeypatch):
    monkeypatch.delenv("GPURUN_TEST_PW", raising=False)
    spec = HostSpec(name="h1", address="10.0.0.1", user="ops", become=True,
                    sudo_password_env="GPURUN_TEST_PW")
    with pytest.raises(ConnectionFailed, match="GPURUN_TEST_PW") as raised:
        read_sudo_password(spec)
    assert "not set on the control node" in str(raised.value)


def test_sudo_password_not_asked_without_terminal():
    # pytest replaces stdin, so there is no terminal to ask in.
    spec = HostSpec(name="h1", address="10.0.0.1", user="ops", become=True)
    with pytest.raises(ConnectionFailed, match="cannot ask") as raised:
        read_sudo_password(spec)
    assert "sudo_password_env" in str(raised.value)
