"""Field cases for the runtime step on real hosts: a runtime set twice, an undefined default
runtime, a daemon.json that does not parse, and a rootless install request."""

from __future__ import annotations

import json

import pytest
from chain import notebook_text
from runtime_hosts import (
    DAEMON_JSON,
    GPURUN_DROP_IN,
    StepRuns,
    docker_info,
    put_file,
    read_file,
    ssh,
    ssh_ok,
)

pytestmark = pytest.mark.sandbox

RUNTIME = "/usr/bin/nvidia-container-runtime"
INSTALL_STEPS = "docker-binaries,docker-service,nvidia-toolkit"
OPERATOR_DROP_IN = "/etc/systemd/system/docker.service.d/nvidia.conf"
OPERATOR_EXEC_START = ("/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock")


def operator_drop_in(extra: str) -> str:
    return f"[Service]\nExecStart=\nExecStart={OPERATOR_EXEC_START}{extra}\n"


def journal_of(runs: StepRuns, record: dict) -> str | None:
    return read_file(runs.host, f"/var/lib/gpurun/runs/{record['run_id']}/changes.jsonl")


# -- a runtime registered twice: a flag in a drop-in and an entry in daemon.json ------------

@pytest.fixture(scope="module")
def twice(sandbox_hosts, demo_bundle, tmp_path_factory):
    host = sandbox_hosts.start("rt-twice")
    runs = StepRuns(host, demo_bundle, tmp_path_factory.mktemp("rt-twice"))
    record = runs.run(INSTALL_STEPS)
    assert record["status"] == "completed", record["process_output"]
    put_file(host, OPERATOR_DROP_IN, operator_drop_in(f" --add-runtime=nvidia={RUNTIME}"))
    put_file(host, DAEMON_JSON, json.dumps({"runtimes": {"nvidia": {"path": RUNTIME}}}))
    ssh_ok(host, "systemctl daemon-reload && systemctl restart docker")
    return runs


def test_preflight_names_both_places(twice):
    record = twice.run("preflight")
    assert record["status"] == "failed"
    error = twice.step(record, "preflight")["error"]
    assert "runtimes is set twice" in error
    assert DAEMON_JSON in error
    assert OPERATOR_DROP_IN in error


@pytest.mark.parametrize("way", ["daemon.json", "flags"])
def test_runtime_step_leaves_the_conflict_alone(twice, way):
    before = read_file(twice.host, DAEMON_JSON)
    record = twice.run("runtime", runtime_config=way)
    assert record["status"] == "failed"
    error = twice.step(record, "runtime")["error"]
    assert OPERATOR_DROP_IN in error
    assert "nothing was changed" in error
    assert read_file(twice.host, DAEMON_JSON) == before
    assert read_file(twice.host, GPURUN_DROP_IN) is None
    assert journal_of(twice, record) is None


def test_flags_way_after_operator_removes_flag(twice):
    put_file(twice.host, OPERATOR_DROP_IN, operator_drop_in(""))
    ssh_ok(twice.host, "systemctl daemon-reload")

    record = twice.run("runtime", runtime_config="flags")
    assert record["status"] == "completed", record["process_output"]
    assert json.loads(read_file(twice.host, DAEMON_JSON)) == {}
    drop_in = read_file(twice.host, GPURUN_DROP_IN)
    assert f"--add-runtime=nvidia={RUNTIME}" in drop_in
    info = docker_info(twice.host)
    assert info["DefaultRuntime"] == "nvidia"
    assert info["Runtimes"]["nvidia"]["path"] == RUNTIME

    record = twice.run("preflight")
    text = notebook_text(twice.notebook(record, "preflight"))
    assert "runtimes is set twice" not in text
    assert "no option set twice" in text


# -- a default runtime that is not defined ------------------------------------------------

@pytest.fixture(scope="module")
def undefined_default(sandbox_hosts, demo_bundle, tmp_path_factory):
    host = sandbox_hosts.start("rt-undefined")
    runs = StepRuns(host, demo_bundle, tmp_path_factory.mktemp("rt-undefined"))
    record = runs.run(INSTALL_STEPS)
    assert record["status"] == "completed", record["process_output"]
    put_file(host, DAEMON_JSON, '{"default-runtime": "nvidia"}\n')
    ssh(host, "systemctl restart docker")
    return runs


def test_dockerd_rejects_undefined_default(undefined_default):
    host = undefined_default.host
    assert docker_info(host) is None
    log = ssh_ok(host, "journalctl -u docker -n 30 --no-pager -o cat")
    assert "specified default runtime 'nvidia' does not exist" in log


def test_preflight_flags_undefined_default(undefined_default):
    record = undefined_default.run("preflight")
    assert record["status"] == "failed"
    error = undefined_default.step(record, "preflight")["error"]
    assert "default runtime 'nvidia' is not defined" in error
    assert "--steps runtime" in error


def test_runtime_step_defines_the_default(undefined_default):
    record = undefined_default.run("runtime")
    assert record["status"] == "completed", record["process_output"]
    assert json.loads(read_file(undefined_default.host, DAEMON_JSON)) == {
        "default-runtime": "nvidia", "runtimes": {"nvidia": {"path": RUNTIME}}}
    info = docker_info(undefined_default.host)
    assert info["DefaultRuntime"] == "nvidia"
    assert info["Runtimes"]["nvidia"]["path"] == RUNTIME


# -- a daemon.json that does not parse, and rootless, on a host without Docker -------------

@pytest.fixture(scope="module")
def bare(sandbox_hosts, demo_bundle, tmp_path_factory):
    host = sandbox_hosts.start("rt-bare")
    return StepRuns(host, demo_bundle, tmp_path_factory.mktemp("rt-bare"))


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{\n    "log-level": "info"\n    "debug": true\n}\n', "line 3 column 5"),
        ('{\n    "log-level": "info",\n}\n', "line 3 column 1"),
        ('{"log-level": "info"}\n{"debug": true}\n', "line 2 column 1"),
    ],
    ids=["missing comma", "trailing comma", "second object"],
)
def test_broken_daemon_json_is_left_alone(bare, text, where):
    put_file(bare.host, DAEMON_JSON, text)
    for step in ("preflight", "runtime"):
        record = bare.run(step)
        assert record["status"] == "failed"
        error = bare.step(record, step)["error"]
        assert DAEMON_JSON in error
        assert where in error
        assert read_file(bare.host, DAEMON_JSON) == text
        assert journal_of(bare, record) is None


def test_rootless_request_changes_nothing(bare):
    ssh_ok(bare.host, f"rm -f {DAEMON_JSON}")
    record = bare.run(rootless_user="alice")
    assert record["status"] == "failed"
    assert [s["name"] for s in record["steps"]] == ["preflight"]
    assert "rootless Docker" in bare.step(record, "preflight")["error"]

    record = bare.run("runtime", rootless_user="alice")
    assert record["status"] == "failed"
    error = bare.step(record, "runtime")["error"]
    assert "rootless_user='alice'" in error
    assert "no-cgroups = true" in error
    assert ssh(bare.host, "test -e /usr/bin/dockerd").returncode != 0
    assert journal_of(bare, record) is None
