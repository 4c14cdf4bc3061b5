"""The main job through an ordinary ssh login whose sudo requires a password, on an rpm host.

The password reaches gpurun only through the environment variable named by sudo_password_env,
and must reach no notebook, log or file on either side.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess

import pytest
from chain import gpurun_run, run_records, write_inventory

from gpurun.bundle.manifest import load_manifest
from gpurun.host import Host, HostSpec
from gpurun.sandbox.users import add_sudo_user

pytestmark = pytest.mark.sandbox

PASSWORD_VARIABLE = "GPURUN_TEST_SUDO_USER_PASSWORD"
USER = "operator"


@pytest.fixture(scope="module")
def sudo_job(sandbox_hosts, demo_rpm_bundle, tmp_path_factory):
    """An rpm host converged twice by a sudo user, with the password and both run records."""
    root_host = sandbox_hosts.start("sudo", package_tool="rpm")
    password = "pw-" + secrets.token_hex(12)
    host = add_sudo_user(root_host, USER, password=password)
    folder = tmp_path_factory.mktemp("sudo-job")
    inventory = write_inventory(folder / "inventory.yaml", host, bundle_dir=str(demo_rpm_bundle),
                                package_format="rpm", ansible_become=True,
                                sudo_password_env=PASSWORD_VARIABLE)
    outputs = folder / "outputs"
    os.environ[PASSWORD_VARIABLE] = password
    try:
        first = gpurun_run(inventory, outputs)
        second = gpurun_run(inventory, outputs)
    finally:
        del os.environ[PASSWORD_VARIABLE]
    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    first_record, second_record = run_records(outputs, host.name)
    return root_host, host, password, folder, first_record, second_record


def test_chain_completes_as_sudo_user(sudo_job):
    _, host, _, folder, first, _ = sudo_job
    assert host.user == USER
    assert first["status"] == "completed"
    assert all(step["status"] == "completed" for step in first["steps"])
    notebook = folder / "outputs" / host.name / first["run_id"] / first["steps"][0]["notebook"]
    assert re.search(rf"ssh user\s+{USER}", notebook.read_text())


def test_second_run_changes_nothing(sudo_job):
    second = sudo_job[5]
    for step in second["steps"]:
        assert step["status"] == "completed", step
        assert step["changed"] is False, step


def test_commands_ran_through_sudo(sudo_job):
    _, host, _, folder, first, _ = sudo_job
    step = next(s for s in first["steps"] if s["name"] == "nvidia-toolkit")
    text = (folder / "outputs" / host.name / first["run_id"] / step["notebook"]).read_text()
    assert "sudo rpm -Uvh" in text
    assert "sudo -S" not in text


def test_end_state_through_sudo_user(sudo_job, sandbox_hosts, demo_rpm_bundle):
    root_host = sudo_job[0]
    info = json.loads(sandbox_hosts.run(root_host, ["docker", "info", "--format",
                                                    "{{json .}}"]).stdout)
    assert "nvidia" in info["Runtimes"]
    assert info["DefaultRuntime"] == "nvidia"
    image = load_manifest(demo_rpm_bundle).test_image()
    assert image is not None
    result = sandbox_hosts.run(root_host, ["docker", "run", "--rm", str(image.image), "echo", "hi"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hi"


def test_files_owned_by_root(sudo_job, sandbox_hosts):
    root_host = sudo_job[0]
    paths = ("/usr/bin/dockerd /etc/docker/daemon.json /etc/systemd/system/docker.service "
             "/var/lib/gpurun/bundle/*/* /var/lib/gpurun/bundle/*/*/*")
    owners = sandbox_hosts.run(root_host, ["sh", "-c", f"stat -c '%U %a %n' {paths}"])
    owners = owners.stdout.splitlines()
    assert len(owners) >= 8, owners
    for line in owners:
        assert line.startswith("root "), line
    left = sandbox_hosts.run(root_host, ["sh", "-c", "ls -d /tmp/gpurun-upload.* 2>/dev/null"])
    assert left.stdout == "", left.stdout


def files_containing(root, secret: str) -> list[str]:
    return [str(path) for path in sorted(root.rglob("*"))
            if path.is_file() and secret.encode() in path.read_bytes()]


def test_password_in_no_record(sudo_job, sandbox_hosts):
    root_host, _, password, folder, _, _ = sudo_job
    assert files_containing(folder / "outputs", password) == []
    # grep reads the pattern from stdin, so the password is in no argv on the host either.
    search = subprocess.run(
        root_host.ssh_argv(["grep", "-rlF", "-f", "/dev/stdin", "/var/lib/gpurun", "/etc",
                            "/tmp", "/var/log", f"/home/{USER}"]),
        input=password + "\n", capture_output=True, text=True, timeout=120, check=False)
    assert search.stdout == "", search.stdout
    assert search.returncode == 1, search.stderr


def run_preflight(tmp_path, host, bundle, name: str, **variables):
    inventory = write_inventory(tmp_path / f"{name}.yaml", host, bundle_dir=str(bundle),
                                package_format="rpm", ansible_become=True, **variables)
    outputs = tmp_path / f"outputs-{name}"
    result = gpurun_run(inventory, outputs, "--steps", "preflight")
    [record] = run_records(outputs, host.name)
    return result, record, outputs


def test_wrong_password_rejected(sudo_job, demo_rpm_bundle, tmp_path, monkeypatch):
    host = sudo_job[1]
    wrong = "wrong-" + secrets.token_hex(8)
    monkeypatch.setenv(PASSWORD_VARIABLE, wrong)
    result, record, outputs = run_preflight(tmp_path, host, demo_rpm_bundle, "wrong",
                                            sudo_password_env=PASSWORD_VARIABLE)
    assert result.returncode != 0
    error = record["steps"][0]["error"]
    assert f"sudo on host {host.name} rejected {USER}" in error
    assert files_containing(outputs, wrong) == []


def test_unset_variable_named(sudo_job, demo_rpm_bundle, tmp_path, monkeypatch):
    host = sudo_job[1]
    monkeypatch.delenv(PASSWORD_VARIABLE, raising=False)
    result, record, _ = run_preflight(tmp_path, host, demo_rpm_bundle, "unset",
                                      sudo_password_env=PASSWORD_VARIABLE)
    assert result.returncode != 0
    assert PASSWORD_VARIABLE in record["steps"][0]["error"]
    assert "not set on the control node" in record["steps"][0]["error"]


def test_papermill_cannot_ask_for_password(sudo_job, demo_rpm_bundle, tmp_path):
    host = sudo_job[1]
    result, record, _ = run_preflight(tmp_path, host, demo_rpm_bundle, "ask")
    assert result.returncode != 0
    error = record["steps"][0]["error"]
    assert "cannot ask" in error
    assert "sudo_password_env" in error


def test_login_without_become_rejected(sudo_job, demo_rpm_bundle, tmp_path):
    host = sudo_job[1]
    inventory = write_inventory(tmp_path / "plain.yaml", host, bundle_dir=str(demo_rpm_bundle),
                                package_format="rpm")
    result = gpurun_run(inventory, tmp_path / "outputs-plain", "--steps", "preflight")
    assert result.returncode != 0
    [record] = run_records(tmp_path / "outputs-plain", host.name)
    assert "set become: true" in record["steps"][0]["error"]


def test_password_line_never_runs_as_a_command(sudo_job, sandbox_hosts, monkeypatch):
    """Where sudo lets the login start sh without a password, the unread line is skipped."""
    root_host = sudo_job[0]
    witness = f"/tmp/gpurun-password-ran-{secrets.token_hex(4)}"
    # A password that is also a shell command: if the root shell ever ran it, the file appears.
    password = f"touch {witness}"
    host = add_sudo_user(root_host, "shonly", password=password)
    rule = "shonly ALL=(ALL) NOPASSWD: /bin/sh, /usr/bin/sh\n"
    sandbox_hosts.run(root_host, ["sh", "-c", f"printf '%s' '{rule}' > /etc/sudoers.d/shonly"])
    monkeypatch.setenv(PASSWORD_VARIABLE, password)
    spec = HostSpec(name=host.name, address=host.address, port=host.port, user=host.user,
                    key_file=str(host.key_file), known_hosts_file=str(host.known_hosts_file),
                    become=True, sudo_password_env=PASSWORD_VARIABLE)
    login = Host(spec=spec, machine=None, run_id=f"test-sudo-sh-{secrets.token_hex(4)}")

    try:
        uid = login.run(["id", "-u"]).stdout.strip()
    finally:
        login.close()
    ran = sandbox_hosts.run(root_host, ["test", "-e", witness]).returncode == 0

    assert uid == "0"
    assert not ran, f"the password line ran as a command and created {witness}"
