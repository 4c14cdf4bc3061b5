"""The main job on a real sandbox host: every runbook, then a second run that changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chain import (
    assert_installed_without_errors,
    assert_nothing_changed,
    converge_twice,
    error_outputs,
    papermill_statuses,
)

from gpurun.bundle.manifest import load_manifest
from gpurun.steps import STEP_NAMES

pytestmark = pytest.mark.sandbox

TRACE = "/var/log/gpurun-standin/nvidia-container-runtime.log"
TOOLKIT = ["libnvidia-container1", "libnvidia-container-tools", "nvidia-container-toolkit-base",
           "nvidia-container-toolkit"]


@pytest.fixture(scope="module")
def converged(sandbox_hosts, demo_bundle, tmp_path_factory):
    """A host that went through the main job twice, with the records of both runs."""
    return converge_twice(sandbox_hosts, "main", tmp_path_factory.mktemp("main-job"),
                          bundle_dir=str(demo_bundle))


def test_first_run_completes_every_step(converged):
    host, outputs, first, _ = converged
    assert_installed_without_errors(host, outputs, first)


def test_notebooks_have_no_errors(converged):
    host, outputs, first, second = converged
    for record in (first, second):
        folder = outputs / host.name / record["run_id"]
        for step in record["steps"]:
            notebook = folder / step["notebook"]
            assert error_outputs(notebook) == [], notebook
            assert papermill_statuses(notebook) == {"completed"}, notebook


def test_second_run_changes_nothing(converged):
    _, _, _, second = converged
    assert_nothing_changed(second)
    for step in second["steps"]:
        for outcome in step["outcomes"]:
            assert outcome["status"] == "unchanged", outcome
            assert outcome["reason"], outcome


def test_docker_shows_nvidia_as_default(converged, sandbox_hosts):
    host = converged[0]
    result = sandbox_hosts.run(host, ["docker", "info", "--format", "{{json .}}"])
    info = json.loads(result.stdout)
    assert "nvidia" in info["Runtimes"]
    assert info["DefaultRuntime"] == "nvidia"


def test_container_runs_through_nvidia_runtime(converged, sandbox_hosts, demo_bundle):
    host = converged[0]
    image = load_manifest(demo_bundle).test_image()
    assert image is not None
    before = sandbox_hosts.run(host, ["sh", "-c", f"wc -l < {TRACE}"]).stdout.strip()
    result = sandbox_hosts.run(host, ["docker", "run", "--rm", str(image.image), "echo", "hi"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hi"
    trace = sandbox_hosts.run(host, ["cat", TRACE]).stdout.splitlines()
    assert len(trace) > int(before)
    assert any(" create " in line or " run " in line for line in trace[int(before):]), trace


def test_services_enabled(converged, sandbox_hosts):
    host = converged[0]
    for unit in ("docker.service", "docker.socket", "containerd.service"):
        result = sandbox_hosts.run(host, ["systemctl", "is-enabled", unit])
        assert result.stdout.strip() == "enabled", unit


def test_binaries_match_manifest(converged, sandbox_hosts, demo_bundle):
    host = converged[0]
    manifest = load_manifest(demo_bundle)
    for name, sha256 in manifest.docker_binaries.items():
        path = f"/usr/bin/{name}"
        stat = sandbox_hosts.run(host, ["stat", "-c", "%a %U %G", path]).stdout.split()
        assert stat == ["755", "root", "root"], path
        found = sandbox_hosts.run(host, ["sha256sum", path]).stdout.split()[0]
        assert found == sha256, path


def test_toolkit_installed_in_one_dpkg_run(converged, sandbox_hosts):
    """C05: dpkg's own log shows one run that unpacks all four, then configures them in order."""
    host = converged[0]
    log = sandbox_hosts.run(host, ["cat", "/var/log/dpkg.log"]).stdout.splitlines()
    # Each dpkg run starts with "startup archives unpack" (dpkg -i) or "startup packages ...".
    dpkg_runs: list[list[list[str]]] = []
    for line in log:
        words = line.split()[2:]
        if words[:1] == ["startup"]:
            dpkg_runs.append([])
        elif dpkg_runs:
            dpkg_runs[-1].append(words)

    def packages(run: list[list[str]], action: str) -> list[str]:
        names = [words[1].split(":")[0] for words in run if words[:1] == [action]]
        return [name for name in names if name in TOOLKIT]

    with_toolkit = [run for run in dpkg_runs if packages(run, "install")]
    assert len(with_toolkit) == 1, with_toolkit
    assert sorted(packages(with_toolkit[0], "install")) == sorted(TOOLKIT)
    assert packages(with_toolkit[0], "configure") == TOOLKIT


def test_host_journal_lists_changes(converged, sandbox_hosts):
    host, _, first, _ = converged
    journal = sandbox_hosts.run(
        host, ["cat", f"/var/lib/gpurun/runs/{first['run_id']}/changes.jsonl"]).stdout
    paths = {json.loads(line)["path"] for line in journal.splitlines()}
    assert "/usr/bin/dockerd" in paths
    assert "/etc/docker/daemon.json" in paths
    assert "/etc/systemd/system/docker.socket" in paths


def test_outputs_layout(converged):
    host, outputs, first, _ = converged
    folder = outputs / host.name / first["run_id"]
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([f"{n:02d}-{s}.ipynb" for n, s in enumerate(STEP_NAMES, 1)]
                           + ["SHA256SUMS", "run.json"])
    assert Path(folder / "run.json").exists()


def test_runs_leave_no_shared_connection_folder(converged):
    """Each run ends its shared ssh connection and removes the run's folder in /tmp/gpurun-ssh."""
    _, _, first, second = converged
    for record in (first, second):
        assert not Path(f"/tmp/gpurun-ssh/{record['run_id']}").exists(), record["run_id"]
