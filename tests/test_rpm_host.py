"""The main job on a host whose package tool is rpm, with the stand-in toolkit as rpm packages.

RPM distributions cannot be downloaded here, so the sandbox host is Debian with an rpm
database that owns its base system, and the inventory sets package_format: rpm.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
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

from gpurun.bundle.manifest import load_manifest, write_manifest

pytestmark = pytest.mark.sandbox

TOOLKIT = ["libnvidia-container1", "libnvidia-container-tools",
           "nvidia-container-toolkit-base", "nvidia-container-toolkit"]
TRACE = "/var/log/gpurun-standin/nvidia-container-runtime.log"


@pytest.fixture(scope="module")
def converged(sandbox_hosts, demo_rpm_bundle, tmp_path_factory):
    """An rpm host that went through the main job twice, with the records of both runs."""
    return converge_twice(sandbox_hosts, "rpm", tmp_path_factory.mktemp("rpm-job"),
                          start_options={"package_tool": "rpm"},
                          bundle_dir=str(demo_rpm_bundle), package_format="rpm")


def test_chain_completes_on_rpm_host(converged):
    host, outputs, first, _ = converged
    assert_installed_without_errors(host, outputs, first)


def test_second_run_changes_nothing(converged):
    assert_nothing_changed(converged[3])


def test_toolkit_in_rpm_database(converged, sandbox_hosts):
    host = converged[0]
    for name in TOOLKIT:
        result = sandbox_hosts.run(host, ["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", name])
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() == "1.17.2-1", name
        known_to_dpkg = sandbox_hosts.run(host, ["dpkg-query", "-W", name])
        assert known_to_dpkg.returncode != 0, name


def test_toolkit_shares_one_rpm_transaction_id(converged, sandbox_hosts):
    """C05: rpm stamps every package of one transaction with the same INSTALLTID."""
    host = converged[0]
    result = sandbox_hosts.run(host, ["rpm", "-q", "--qf", "%{INSTALLTID}\\n", *TOOLKIT])
    assert result.returncode == 0, result.stdout + result.stderr
    ids = result.stdout.split()
    assert len(ids) == len(TOOLKIT)
    assert len(set(ids)) == 1, ids


def test_toolkit_installed_in_one_rpm_transaction(converged):
    host, outputs, first, _ = converged
    step = next(s for s in first["steps"] if s["name"] == "nvidia-toolkit")
    text = notebook_text(outputs / host.name / first["run_id"] / step["notebook"])
    commands = [line for line in text.splitlines() if "rpm -Uvh" in line]
    assert len(commands) == 1, commands
    assert "--nodeps" not in commands[0]
    assert "--force" not in commands[0]
    positions = [commands[0].index(f"/{name}-1.17.2-1") for name in TOOLKIT]
    assert positions == sorted(positions), commands[0]


def test_nvidia_runtime_default_and_used(converged, sandbox_hosts, demo_rpm_bundle):
    host = converged[0]
    info = json.loads(sandbox_hosts.run(host, ["docker", "info", "--format", "{{json .}}"]).stdout)
    assert "nvidia" in info["Runtimes"]
    assert info["DefaultRuntime"] == "nvidia"
    image = load_manifest(demo_rpm_bundle).test_image()
    assert image is not None
    before = len(sandbox_hosts.run(host, ["cat", TRACE]).stdout.splitlines())
    result = sandbox_hosts.run(host, ["docker", "run", "--rm", str(image.image), "echo", "hi"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hi"
    trace = sandbox_hosts.run(host, ["cat", TRACE]).stdout.splitlines()
    assert len(trace) > before


def bundle_without(source: Path, target: Path, package: str) -> Path:
    """Copy a bundle and leave one toolkit package out of it and of its manifest."""
    shutil.copytree(source, target)
    manifest = load_manifest(target)
    dropped = next(f for f in manifest.toolkit_packages() if f.name == package)
    (target / dropped.path).unlink()
    write_manifest(target, dataclasses.replace(
        manifest,
        files=[f for f in manifest.files if f.path != dropped.path],
        toolkit_install_order=[n for n in manifest.toolkit_install_order if n != package],
    ))
    return target


def test_forced_install_checks_runtime_binaries(sandbox_hosts, demo_rpm_bundle, tmp_path):
    # libnvidia-container-tools ships nvidia-container-cli, which the others require.
    host = sandbox_hosts.start("rpmforce", package_tool="rpm")
    bundle = bundle_without(demo_rpm_bundle, tmp_path / "bundle", "libnvidia-container-tools")

    plain = write_inventory(tmp_path / "plain.yaml", host, bundle_dir=str(bundle),
                            package_format="rpm")
    refused = gpurun_run(plain, tmp_path / "out-plain", "--steps", "nvidia-toolkit")
    assert refused.returncode != 0
    [record] = run_records(tmp_path / "out-plain", host.name)
    assert "Failed dependencies" in record["steps"][0]["error"]
    installed = sandbox_hosts.run(host, ["rpm", "-qa"]).stdout
    assert "nvidia" not in installed, installed

    forced = write_inventory(tmp_path / "forced.yaml", host, bundle_dir=str(bundle),
                             package_format="rpm", allow_forced_install=True)
    result = gpurun_run(forced, tmp_path / "out-forced", "--steps", "nvidia-toolkit")
    assert result.returncode != 0
    [record] = run_records(tmp_path / "out-forced", host.name)
    error = record["steps"][0]["error"]
    assert "nvidia-container-cli: not found on PATH" in error
    assert "allow_forced_install" in error
    installed = sandbox_hosts.run(host, ["rpm", "-qa"]).stdout
    assert "nvidia-container-toolkit-1.17.2-1" in installed
