"""Switching where the nvidia runtime is configured, on one real host, and a driverless install.

The host goes through the whole chain first, with an nvidia-smi that fails the way it does
without a loaded driver. Then the runtime step moves the runtimes to dockerd's flags, back to
daemon.json, switches the default back to runc, and meets a dockerd that rejects the change.
The tests run in file order and each starts from the state the previous one left.
"""

from __future__ import annotations

import json

import pytest
from chain import notebook_text
from runtime_hosts import (
    DAEMON_JSON,
    GPURUN_DROP_IN,
    NVIDIA_SMI_WITHOUT_DRIVER,
    StepRuns,
    docker_info,
    put_file,
    read_file,
    ssh,
    ssh_ok,
)

from gpurun.bundle.manifest import load_manifest

pytestmark = pytest.mark.sandbox

RUNTIME = "/usr/bin/nvidia-container-runtime"
SITE_POLICY = "/etc/systemd/system/docker.service.d/site-policy.conf"
# A site's own start check that rejects a daemon.json making nvidia the default runtime.
# dockerd accepts the file, so only the restart shows that the change did not take.
SITE_POLICY_TEXT = """[Service]
ExecStartPre=/bin/sh -c '! grep -q "default-runtime.*nvidia" /etc/docker/daemon.json'
ExecReload=
ExecReload=/bin/sh -c '! grep -q "default-runtime.*nvidia" /etc/docker/daemon.json \
    && kill -HUP ${MAINPID}'
"""


@pytest.fixture(scope="module")
def runs(sandbox_hosts, demo_bundle, tmp_path_factory):
    host = sandbox_hosts.start("rt-switch")
    runs = StepRuns(host, demo_bundle, tmp_path_factory.mktemp("rt-switch"))
    put_file(host, "/usr/local/bin/nvidia-smi", NVIDIA_SMI_WITHOUT_DRIVER, "0755")
    runs.first = runs.run()
    return runs


def daemon_json(runs) -> dict:
    return json.loads(read_file(runs.host, DAEMON_JSON) or "{}")


def dockerd_pid(runs) -> str:
    return ssh_ok(runs.host, "systemctl show docker -p MainPID --value").strip()


def test_driverless_host_installs_everything(runs):
    record = runs.first
    assert record["status"] == "completed", record["process_output"]
    preflight = notebook_text(runs.notebook(record, "preflight"))
    assert "nvidia-smi exited 9" in preflight
    assert "kernel module nvidia not loaded" in preflight
    assert "no /dev/nvidia* nodes" in preflight

    checks = {c["name"]: c for c in runs.step(record, "verify")["checks"]}
    gpu = checks["container sees the GPUs"]
    assert gpu["status"] == "skipped"
    assert gpu["detail"].startswith("no NVIDIA driver on this host")
    assert checks["container runs with the default runtime"]["status"] == "passed"


def test_gpu_request_fails_like_a_real_host(runs):
    image = load_manifest(runs.bundle).test_image().image
    plain = ssh(runs.host, f"docker run --rm {image} echo plain-ok")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == "plain-ok"
    gpus = ssh(runs.host, f"docker run --rm --gpus all {image} true")
    assert gpus.returncode != 0
    assert "driver not loaded" in gpus.stderr


def test_switch_to_flags(runs):
    # The operator's own keys and an extra runtime must survive the move.
    put_file(runs.host, DAEMON_JSON, json.dumps({
        "log-level": "info",
        "runtimes": {"nvidia": {"path": RUNTIME}, "runc-alt": {"path": "/usr/bin/runc"}},
        "default-runtime": "nvidia",
    }))
    ssh_ok(runs.host, "systemctl reload docker")

    record = runs.run("runtime", runtime_config="flags")
    assert record["status"] == "completed", record["process_output"]
    assert runs.step(record, "runtime")["changed"] is True

    drop_in = read_file(runs.host, GPURUN_DROP_IN)
    assert drop_in is not None
    assert f"--add-runtime=nvidia={RUNTIME}" in drop_in
    assert "--add-runtime=runc-alt=/usr/bin/runc" in drop_in
    assert "--default-runtime=nvidia" in drop_in
    assert daemon_json(runs) == {"log-level": "info"}

    exec_start = ssh_ok(runs.host, "systemctl show docker -p ExecStart --value")
    assert f"--add-runtime=nvidia={RUNTIME}" in exec_start
    info = docker_info(runs.host)
    assert info["DefaultRuntime"] == "nvidia"
    assert info["Runtimes"]["nvidia"]["path"] == RUNTIME
    assert "runc-alt" in info["Runtimes"]


def test_flags_again_changes_nothing(runs):
    pid = dockerd_pid(runs)
    record = runs.run("runtime", runtime_config="flags")
    assert record["status"] == "completed", record["process_output"]
    step = runs.step(record, "runtime")
    assert step["changed"] is False
    assert [o["status"] for o in step["outcomes"]] == ["unchanged"]
    assert dockerd_pid(runs) == pid


def test_switch_back_to_daemon_json(runs):
    record = runs.run("runtime", runtime_config="daemon.json")
    assert record["status"] == "completed", record["process_output"]

    assert read_file(runs.host, GPURUN_DROP_IN) is None
    assert daemon_json(runs) == {
        "log-level": "info",
        "runtimes": {"runc-alt": {"path": "/usr/bin/runc"}, "nvidia": {"path": RUNTIME}},
        "default-runtime": "nvidia",
    }
    exec_start = ssh_ok(runs.host, "systemctl show docker -p ExecStart --value")
    assert "--add-runtime" not in exec_start
    assert "--default-runtime" not in exec_start
    assert docker_info(runs.host)["DefaultRuntime"] == "nvidia"


def test_default_back_to_runc_by_reload(runs):
    pid = dockerd_pid(runs)
    record = runs.run("runtime", set_default_runtime=False)
    assert record["status"] == "completed", record["process_output"]

    config = daemon_json(runs)
    assert config["default-runtime"] == "runc"
    assert config["runtimes"]["nvidia"] == {"path": RUNTIME}
    info = docker_info(runs.host)
    assert info["DefaultRuntime"] == "runc"
    assert "nvidia" in info["Runtimes"]
    assert dockerd_pid(runs) == pid, "a daemon.json change must be applied by a reload"


def test_rejected_change_puts_old_files_back(runs):
    put_file(runs.host, SITE_POLICY, SITE_POLICY_TEXT)
    ssh_ok(runs.host, "systemctl daemon-reload")
    before = read_file(runs.host, DAEMON_JSON)
    try:
        record = runs.run("runtime", set_default_runtime=True)
        assert record["status"] == "failed"
        error = runs.step(record, "runtime")["error"]
        assert "did not take the new configuration" in error
        assert "--- configuration tried ---" in error
        assert '"default-runtime": "nvidia"' in error.split("--- configuration restored ---")[0]
        assert "--- configuration restored ---" in error
        assert "dockerd runs again with the old configuration" in error

        assert read_file(runs.host, DAEMON_JSON) == before
        info = docker_info(runs.host)
        assert info is not None, "dockerd must run again after the restore"
        assert info["DefaultRuntime"] == "runc"
    finally:
        ssh(runs.host, f"rm -f {SITE_POLICY} && systemctl daemon-reload")


def test_runtime_path_checked_before_writing(runs):
    with_ghost = {**daemon_json(runs)}
    with_ghost["runtimes"] = {**with_ghost["runtimes"], "ghost": {"path": "/opt/none/ghost"}}
    put_file(runs.host, DAEMON_JSON, json.dumps(with_ghost))
    before = read_file(runs.host, DAEMON_JSON)
    pid = dockerd_pid(runs)

    record = runs.run("runtime", set_default_runtime=True)
    assert record["status"] == "failed"
    error = runs.step(record, "runtime")["error"]
    assert "'ghost'" in error
    assert "/opt/none/ghost" in error
    assert "nothing was changed" in error
    assert read_file(runs.host, DAEMON_JSON) == before
    assert dockerd_pid(runs) == pid
