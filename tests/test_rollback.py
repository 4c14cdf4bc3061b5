"""Rollback on a real sandbox host: the main job, then `gpurun rollback` of that run.

Before the main job the host gets files that the run will replace: a daemon.json with a key
of its own, a hand-written docker.service and an old ctr binary. So the rollback has to put
back content, mode and owner, not only remove what the run created.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from chain import GPURUN, PROJECT, gpurun_run, write_inventory

from gpurun.records import check_outputs

pytestmark = pytest.mark.sandbox

PLANTED = {
    "/etc/docker/daemon.json": ('{\n  "log-level": "warn"\n}\n', "0600"),
    "/etc/systemd/system/docker.service": (
        ("[Unit]\nDescription=Docker written by hand\n\n[Service]\n"
         "ExecStart=/usr/bin/dockerd -H fd://\n\n[Install]\nWantedBy=multi-user.target\n"),
        "0644"),
    "/usr/bin/ctr": ("#!/bin/sh\necho 'ctr from an earlier install'\n", "0750"),
}
UNITS = ["docker.service", "docker.socket", "containerd.service"]


def host_sha256(sandbox_hosts, host, path: str) -> str | None:
    result = sandbox_hosts.run(host, ["sha256sum", "--", path])
    return result.stdout.split()[0] if result.returncode == 0 else None


def host_stat(sandbox_hosts, host, path: str) -> str:
    return sandbox_hosts.run(host, ["stat", "-c", "%a %U:%G", "--", path]).stdout.strip()


def gpurun_rollback(inventory: Path, outputs: Path, run_id: str, *args: str):
    return subprocess.run(
        [*GPURUN, "rollback", "--run", run_id, "--inventory", str(inventory),
         "--outputs", str(outputs), *args],
        cwd=PROJECT, capture_output=True, text=True, timeout=900, check=False,
    )


def newest_record(outputs: Path, host: str) -> dict:
    folder = max((outputs / host).iterdir())
    return json.loads((folder / "run.json").read_text())


def plant_files(sandbox_hosts, host) -> dict[str, tuple[str, str]]:
    """Write the files the run will replace; return each one's SHA-256 and stat."""
    for path, (content, mode) in PLANTED.items():
        script = 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"'
        result = subprocess.run(host.ssh_argv(["sh", "-c", script, "sh", path, mode]),
                                input=content, capture_output=True, text=True, timeout=60,
                                check=False)
        assert result.returncode == 0, result.stderr
    assert sandbox_hosts.run(host, ["systemctl", "daemon-reload"]).returncode == 0
    return {path: (host_sha256(sandbox_hosts, host, path), host_stat(sandbox_hosts, host, path))
            for path in PLANTED}


@pytest.fixture(scope="module")
def rolled_back(sandbox_hosts, demo_bundle, tmp_path_factory):
    """A host after the main job, a refused rollback, a rollback, and a repeated rollback."""
    host = sandbox_hosts.start("rollback")
    before = plant_files(sandbox_hosts, host)
    folder = tmp_path_factory.mktemp("rollback")
    # The planted ctr and unit look like a static Docker that gpurun did not install.
    inventory = write_inventory(folder / "inventory.yaml", host, bundle_dir=str(demo_bundle),
                                replace_existing=True)
    outputs = folder / "outputs"

    main = gpurun_run(inventory, outputs)
    assert main.returncode == 0, main.stdout + main.stderr
    run_id = newest_record(outputs, host.name)["run_id"]
    journal = sandbox_hosts.run(host, ["cat", f"/var/lib/gpurun/runs/{run_id}/changes.jsonl"])
    entries = [json.loads(line) for line in journal.stdout.splitlines()]

    # A hand edit after the run: the rollback must stop before changing anything.
    edit = sandbox_hosts.run(host, ["sh", "-c", "echo ' ' >> /etc/docker/daemon.json"])
    assert edit.returncode == 0, edit.stderr
    refused = gpurun_rollback(inventory, outputs, run_id)
    refused_record = newest_record(outputs, host.name)
    docker_after_refusal = sandbox_hosts.run(host, ["systemctl", "is-active", "docker"])

    plan_outputs = folder / "plan-outputs"
    planned = gpurun_rollback(inventory, plan_outputs, run_id, "--plan", "--hosts", host.name,
                              "--overwrite-later-changes")

    rollback = gpurun_rollback(inventory, outputs, run_id, "--overwrite-later-changes")
    rollback_record = newest_record(outputs, host.name)
    again = gpurun_rollback(inventory, outputs, run_id)
    again_record = newest_record(outputs, host.name)
    return {
        "host": host, "outputs": outputs, "run_id": run_id, "before": before,
        "entries": entries, "refused": refused, "refused_record": refused_record,
        "docker_after_refusal": docker_after_refusal.stdout.strip(),
        "rollback": rollback, "rollback_record": rollback_record,
        "again": again, "again_record": again_record,
        "planned": planned, "planned_record": newest_record(plan_outputs, host.name),
    }


def first_entries(entries: list[dict]) -> dict[str, dict]:
    """Return the first journal entry of each file path: it has the state before the run."""
    first: dict[str, dict] = {}
    for entry in entries:
        if entry["path"].startswith("/"):
            first.setdefault(entry["path"], entry)
    return first


def test_journal_recorded_planted_files(rolled_back):
    first = first_entries(rolled_back["entries"])
    for path, (sha256, _) in rolled_back["before"].items():
        assert first[path]["action"] == "modified", path
        assert first[path]["sha256_before"] == sha256, path
        assert first[path]["backup"], path


def test_rollback_refuses_later_edit(rolled_back):
    refused = rolled_back["refused"]
    assert refused.returncode == 1, refused.stdout + refused.stderr
    record = rolled_back["refused_record"]
    assert record["status"] == "failed"
    assert "/etc/docker/daemon.json" in record["steps"][0]["error"] + record["reason"]
    assert record["steps"][0]["changed"] in (None, False)
    assert rolled_back["docker_after_refusal"] == "active"


def test_rollback_completes(rolled_back):
    rollback = rolled_back["rollback"]
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    record = rolled_back["rollback_record"]
    assert record["status"] == "completed"
    [step] = record["steps"]
    assert step["name"] == "rollback"
    assert step["changed"] is True
    assert all(check["status"] == "passed" for check in step["checks"]), step["checks"]


def test_changed_files_restored_byte_for_byte(rolled_back, sandbox_hosts):
    host = rolled_back["host"]
    for path, entry in first_entries(rolled_back["entries"]).items():
        if entry["sha256_before"] is None:
            continue
        assert host_sha256(sandbox_hosts, host, path) == entry["sha256_before"], path
    for path, (sha256, stat) in rolled_back["before"].items():
        assert host_sha256(sandbox_hosts, host, path) == sha256, path
        assert host_stat(sandbox_hosts, host, path) == stat, path


def test_created_files_removed(rolled_back, sandbox_hosts):
    host = rolled_back["host"]
    created = [path for path, entry in first_entries(rolled_back["entries"]).items()
               if entry["sha256_before"] is None]
    assert "/usr/bin/dockerd" in created
    assert "/etc/systemd/system/docker.socket" in created
    for path in created:
        assert host_sha256(sandbox_hosts, host, path) is None, path


def test_installed_packages_removed(rolled_back, sandbox_hosts):
    host = rolled_back["host"]
    installed = [entry["path"].split(" ", 1)[1] for entry in rolled_back["entries"]
                 if entry["action"] == "package-installed"]
    assert "nvidia-container-toolkit" in installed
    for name in installed:
        status = sandbox_hosts.run(host, ["dpkg-query", "-W", "-f", "${db:Status-Status}", name])
        assert status.stdout.strip() in ("", "not-installed"), name


def test_docker_stopped_and_disabled(rolled_back, sandbox_hosts):
    host = rolled_back["host"]
    for unit in UNITS:
        active = sandbox_hosts.run(host, ["systemctl", "is-active", unit]).stdout.strip()
        assert active == "inactive", unit
        enabled = sandbox_hosts.run(host, ["systemctl", "is-enabled", unit])
        assert enabled.stdout.strip() != "enabled", unit
    assert sandbox_hosts.run(host, ["pgrep", "-x", "dockerd"]).returncode == 1
    assert sandbox_hosts.run(host, ["getent", "group", "docker"]).returncode == 2


def test_rollback_plan_is_marked_and_quiet(rolled_back):
    planned, record = rolled_back["planned"], rolled_back["planned_record"]
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert record["plan_only"] is True
    assert record["run_id"].endswith("-plan")
    assert "papermill" not in planned.stderr


def test_repeated_rollback_changes_nothing(rolled_back):
    again = rolled_back["again"]
    assert again.returncode == 0, again.stdout + again.stderr
    [step] = rolled_back["again_record"]["steps"]
    assert step["changed"] is False
    assert all(outcome["status"] == "unchanged" for outcome in step["outcomes"])


def test_rollback_records_itself(rolled_back, sandbox_hosts):
    outputs, host = rolled_back["outputs"], rolled_back["host"]
    record = rolled_back["rollback_record"]
    folder = outputs / host.name / record["run_id"]
    assert sorted(p.name for p in folder.iterdir()) == ["01-rollback.ipynb", "SHA256SUMS",
                                                        "run.json"]
    assert check_outputs(outputs) == []
    journal = sandbox_hosts.run(
        host, ["cat", f"/var/lib/gpurun/runs/{record['run_id']}/changes.jsonl"])
    actions = {json.loads(line)["action"] for line in journal.stdout.splitlines()}
    assert {"removed", "modified", "package-removed", "service-stopped", "service-disabled",
            "group-deleted"} <= actions


@pytest.fixture(scope="module")
def rolled_back_without_systemd(sandbox_hosts, demo_bundle, tmp_path_factory):
    """A host without systemd after the main job and a rollback of it."""
    host = sandbox_hosts.start("rollback-nosd", init="none")
    folder = tmp_path_factory.mktemp("rollback-nosd")
    inventory = write_inventory(folder / "inventory.yaml", host, bundle_dir=str(demo_bundle))
    outputs = folder / "outputs"
    main = gpurun_run(inventory, outputs)
    assert main.returncode == 0, main.stdout + main.stderr
    return roll_back_newest(sandbox_hosts, host, inventory, outputs)


def roll_back_newest(sandbox_hosts, host, inventory: Path, outputs: Path):
    """Roll back the host's newest run; return the host, that run's journal entries, the
    rollback's process and its record."""
    run_id = newest_record(outputs, host.name)["run_id"]
    journal = sandbox_hosts.run(host, ["cat", f"/var/lib/gpurun/runs/{run_id}/changes.jsonl"])
    entries = [json.loads(line) for line in journal.stdout.splitlines()]
    rollback = gpurun_rollback(inventory, outputs, run_id)
    return host, entries, rollback, newest_record(outputs, host.name)


def test_rollback_stops_background_daemons(rolled_back_without_systemd, sandbox_hosts):
    host, entries, rollback, record = rolled_back_without_systemd
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    started = {e["path"] for e in entries if e["action"] == "process-started"}
    assert started == {"process containerd", "process dockerd"}
    [step] = record["steps"]
    assert all(check["status"] == "passed" for check in step["checks"]), step["checks"]
    for program in ("dockerd", "containerd"):
        assert sandbox_hosts.run(host, ["pidof", program]).returncode == 1, program


def test_rollback_without_systemd_removes_files(rolled_back_without_systemd, sandbox_hosts):
    host, entries, _, _ = rolled_back_without_systemd
    created = [path for path, entry in first_entries(entries).items()
               if entry["sha256_before"] is None]
    assert "/usr/bin/dockerd" in created
    for path in created:
        assert host_sha256(sandbox_hosts, host, path) is None, path
    assert sandbox_hosts.run(host, ["getent", "group", "docker"]).returncode == 2


@pytest.fixture(scope="module")
def runtime_rolled_back_without_systemd(rolled_back_without_systemd, sandbox_hosts, demo_bundle,
                                        tmp_path_factory):
    """The same host, now bare: Docker from one run, the nvidia runtime from a second run,
    and a rollback of the second run only."""
    host = rolled_back_without_systemd[0]
    folder = tmp_path_factory.mktemp("rollback-nosd-runtime")
    inventory = write_inventory(folder / "inventory.yaml", host, bundle_dir=str(demo_bundle))
    outputs = folder / "outputs"
    docker = gpurun_run(inventory, outputs, "--steps",
                        "preflight,docker-binaries,docker-service")
    assert docker.returncode == 0, docker.stdout + docker.stderr
    runtime = gpurun_run(inventory, outputs, "--steps", "nvidia-toolkit,runtime,verify")
    assert runtime.returncode == 0, runtime.stdout + runtime.stderr
    return roll_back_newest(sandbox_hosts, host, inventory, outputs)


def test_rollback_restarts_dockerd_the_run_restarted(runtime_rolled_back_without_systemd,
                                                     sandbox_hosts):
    host, entries, rollback, record = runtime_rolled_back_without_systemd
    restarted = [e["path"] for e in entries if e["action"] == "process-restarted"]
    assert restarted == ["process dockerd"]
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    [step] = record["steps"]
    assert all(check["status"] == "passed" for check in step["checks"]), step["checks"]
    default = sandbox_hosts.run(host, ["docker", "info", "--format", "{{.DefaultRuntime}}"])
    assert default.stdout.strip() == "runc", default.stdout + default.stderr
