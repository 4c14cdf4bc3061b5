"""`gpurun run --resume RUN-ID`: continue each failed host of a run from its failed step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from chain import GPURUN, PROJECT, gpurun_run, run_records, write_inventory

from gpurun.errors import GpurunError
from gpurun.fleet import hosts_to_resume
from gpurun.steps import STEP_NAMES

EARLIER_STEPS = ["preflight", "docker-binaries", "docker-service", "nvidia-toolkit"]


# -- which hosts and steps a resume picks, from run.json files alone -----------------------------


def write_record(outputs: Path, host: str, run_id: str, status: str, steps: list[tuple[str, str]],
                 **fields) -> None:
    folder = outputs / host / run_id
    folder.mkdir(parents=True)
    record = {"host": host, "run_id": run_id, "plan_only": False, "status": status,
              "requested_steps": STEP_NAMES,
              "steps": [{"name": name, "status": state, **({"completed_in": "run-0"}
                                                            if state == "skipped" else {})}
                        for name, state in steps], **fields}
    (folder / "run.json").write_text(json.dumps(record))


def test_resume_starts_at_failed_step(tmp_path):
    write_record(tmp_path, "gpu1", "run-1", "failed",
                 [("preflight", "completed"), ("docker-binaries", "failed")],
                 overrides={"bundle_dir": "bundles/site"})
    write_record(tmp_path, "gpu2", "run-1", "completed", [(s, "completed") for s in STEP_NAMES])
    write_record(tmp_path, "gpu3", "run-1", "failed", [], reason="connect: no route to host")
    resumed = hosts_to_resume(tmp_path, "run-1")
    assert sorted(resumed) == ["gpu1", "gpu3"]
    assert resumed["gpu1"].completed_earlier == {"preflight": "run-1"}
    assert resumed["gpu1"].overrides == {"bundle_dir": "bundles/site"}
    assert resumed["gpu3"].completed_earlier == {}
    assert resumed["gpu3"].steps == STEP_NAMES


def test_resume_of_resume_keeps_origin(tmp_path):
    write_record(tmp_path, "gpu1", "run-2", "failed",
                 [("preflight", "skipped"), ("docker-binaries", "completed"),
                  ("docker-service", "failed")])
    resumed = hosts_to_resume(tmp_path, "run-2")
    assert resumed["gpu1"].completed_earlier == {"preflight": "run-0",
                                                 "docker-binaries": "run-2"}


def test_resume_rejects_plan_run(tmp_path):
    write_record(tmp_path, "gpu1", "run-1-plan", "failed", [("preflight", "failed")],
                 plan_only=True)
    with pytest.raises(GpurunError, match="is a plan"):
        hosts_to_resume(tmp_path, "run-1-plan")


def test_resume_of_completed_run(tmp_path):
    write_record(tmp_path, "gpu1", "run-1", "completed", [(s, "completed") for s in STEP_NAMES])
    with pytest.raises(GpurunError, match="nothing to resume"):
        hosts_to_resume(tmp_path, "run-1")


def test_resume_of_unknown_run(tmp_path):
    with pytest.raises(GpurunError, match="no records of run run-9"):
        hosts_to_resume(tmp_path, "run-9")


# -- on a sandbox host: fail at the runtime step, fix the inventory, resume ---------------------


@pytest.fixture(scope="module")
def resumed(sandbox_hosts, demo_bundle, tmp_path_factory):
    """A host whose run failed at the runtime step (a typo), then resumed after the fix."""
    host = sandbox_hosts.start("resume")
    folder = tmp_path_factory.mktemp("resume")
    inventory = write_inventory(folder / "inventory.yaml", host, bundle_dir=str(demo_bundle),
                                runtime_config="daemon-json")
    outputs = folder / "outputs"
    failed = gpurun_run(inventory, outputs)

    write_inventory(inventory, host, bundle_dir=str(demo_bundle))
    [first] = run_records(outputs, host.name)
    finished = gpurun_run(inventory, outputs, "--resume", first["run_id"])
    again = gpurun_run(inventory, outputs, "--resume", first["run_id"])
    return host, outputs, failed, finished, again


@pytest.mark.sandbox
def test_first_run_fails_at_runtime(resumed):
    host, outputs, failed, _, _ = resumed
    assert failed.returncode == 1, failed.stdout + failed.stderr
    first = run_records(outputs, host.name)[0]
    assert first["failed_step"] == "runtime"
    assert "invalid runtime_config 'daemon-json'" in first["reason"]
    assert [s["status"] for s in first["steps"]] == ["completed"] * 4 + ["failed"]


@pytest.mark.sandbox
def test_resume_finishes_host(resumed, sandbox_hosts):
    host, outputs, _, finished, _ = resumed
    assert finished.returncode == 0, finished.stdout + finished.stderr
    first, second = run_records(outputs, host.name)
    assert second["status"] == "completed"
    assert second["resumed_from"] == first["run_id"]
    info = sandbox_hosts.run(host, ["docker", "info", "--format", "{{.DefaultRuntime}}"])
    assert info.stdout.strip() == "nvidia"


@pytest.mark.sandbox
def test_resume_skips_earlier_steps(resumed):
    host, outputs, _, _, _ = resumed
    first, second = run_records(outputs, host.name)
    steps = {s["name"]: s for s in second["steps"]}
    assert list(steps) == STEP_NAMES
    for name in EARLIER_STEPS:
        assert steps[name]["status"] == "skipped", name
        assert steps[name]["completed_in"] == first["run_id"], name
    assert steps["runtime"]["status"] == "completed"
    assert steps["verify"]["status"] == "completed"
    notebooks = sorted(p.name for p in (outputs / host.name / second["run_id"]).glob("*.ipynb"))
    assert notebooks == ["05-runtime.ipynb", "06-verify.ipynb"]


@pytest.mark.sandbox
def test_resume_changes_only_later_steps(resumed, sandbox_hosts):
    host, outputs, _, _, _ = resumed
    _, second = run_records(outputs, host.name)
    journal = sandbox_hosts.run(
        host, ["cat", f"/var/lib/gpurun/runs/{second['run_id']}/changes.jsonl"]).stdout
    paths = {json.loads(line)["path"] for line in journal.splitlines()}
    assert "/etc/docker/daemon.json" in paths
    assert not any(path.startswith("/usr/bin/") for path in paths), paths


@pytest.mark.sandbox
def test_resume_of_finished_run(resumed):
    _, _, _, _, again = resumed
    assert again.returncode == 2
    assert "nothing to resume" in again.stderr


def test_resume_rejects_plan_flag(tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"gpu1": {}}}}))
    result = gpurun_run(inventory, tmp_path / "outputs", "--resume", "run-1", "--plan")
    assert result.returncode == 2
    assert "without --plan and --steps" in result.stderr


def test_resume_follows_later_resume(tmp_path):
    write_record(tmp_path, "gpu1", "run-1", "failed",
                 [("preflight", "completed"), ("docker-binaries", "failed")])
    write_record(tmp_path, "gpu1", "run-2", "failed",
                 [("preflight", "skipped"), ("docker-binaries", "completed"),
                  ("docker-service", "failed")], resumed_from="run-1")
    write_record(tmp_path, "gpu2", "run-1", "failed", [("preflight", "failed")])
    write_record(tmp_path, "gpu2", "run-3", "completed", [(s, "completed") for s in STEP_NAMES],
                 resumed_from="run-1")
    resumed = hosts_to_resume(tmp_path, "run-1")
    assert list(resumed) == ["gpu1"]
    assert resumed["gpu1"].completed_earlier == {"preflight": "run-0",
                                                 "docker-binaries": "run-2"}


# -- on a sandbox host: Ctrl-C during a step, then --resume ------------------------------------


@pytest.fixture(scope="module")
def interrupted(sandbox_hosts, demo_bundle, tmp_path_factory):
    """A run interrupted with Ctrl-C during docker-binaries, then resumed.

    The host also contains the unpacked tarball of an earlier interrupted run, which the resumed
    docker-binaries step must remove.
    """
    host = sandbox_hosts.start("interrupt")
    sandbox_hosts.run(host, ["mkdir", "-p", f"{LEFTOVER}/docker"])
    folder = tmp_path_factory.mktemp("interrupt")
    inventory = write_inventory(folder / "inventory.yaml", host, bundle_dir=str(demo_bundle))
    outputs = folder / "outputs"
    # A terminal's Ctrl-C reaches the whole process group: gpurun, its kernel and ssh.
    process = subprocess.Popen(
        [*GPURUN, "run", "--inventory", str(inventory), "--outputs", str(outputs)],
        cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    running = wait_for_running_step(outputs / host.name, "docker-binaries", process)
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=180)
    [record] = run_records(outputs, host.name)
    resumed = gpurun_run(inventory, outputs, "--resume", record["run_id"])
    return host, outputs, running, process.returncode, stdout + stderr, record, resumed


LEFTOVER = "/var/lib/gpurun/runs/20200101-000000-dead/staging"


def wait_for_running_step(host_outputs: Path, step: str, process: subprocess.Popen,
                          timeout: float = 300) -> bool:
    """Wait until the host's run.json shows `step` running; return False if it never did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        for run_json in host_outputs.glob("*/run.json"):
            try:
                steps = json.loads(run_json.read_text())["steps"]
            except (OSError, ValueError):
                continue
            if any(s["name"] == step and s["status"] == "running" for s in steps):
                return True
        time.sleep(0.1)
    return False


@pytest.mark.sandbox
def test_interrupt_exits_130_and_says_how_to_resume(interrupted):
    _, _, running, returncode, output, record, _ = interrupted
    assert running, output
    assert returncode == 130, output
    assert f"interrupted: run {record['run_id']} stopped" in output
    assert f"--resume {record['run_id']}" in output
    assert "Traceback" not in output


@pytest.mark.sandbox
def test_interrupt_recorded_at_its_step(interrupted):
    record = interrupted[5]
    assert record["status"] == "failed"
    assert record["failed_step"] == "docker-binaries"
    assert record["reason"] == "interrupted during docker-binaries (Ctrl-C)"
    assert [s["status"] for s in record["steps"]] == ["completed", "failed"]


@pytest.mark.sandbox
def test_resume_after_interrupt_finishes_and_cleans_up(interrupted, sandbox_hosts):
    host, _, _, _, _, _, resumed = interrupted
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    left = sandbox_hosts.run(host, ["sh", "-c", "ls -d /var/lib/gpurun/runs/*/staging"])
    assert left.stdout.split() == [], left.stdout
    info = sandbox_hosts.run(host, ["docker", "info", "--format", "{{.DefaultRuntime}}"])
    assert info.stdout.strip() == "nvidia"
