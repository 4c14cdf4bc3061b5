"""A bundle built by `gpurun bundle build` from sites on 127.0.0.1, installed on a sandbox host.

The Docker site serves the demo bundle's tarball (Debian's Docker binaries in Docker's layout),
the NVIDIA site the stand-in packages in a signed flat apt repository. The existing runbooks
then install the built bundle on a real systemd host.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from chain import PROJECT, error_outputs, gpurun_run, run_records, write_inventory
from repo_sites import Sites, SiteServer, standin_sites

from gpurun.bundle.archs import local_arch
from gpurun.bundle.manifest import load_manifest, sha256_file, write_manifest
from gpurun.steps import STEP_NAMES

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def sites(demo_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    demo = load_manifest(demo_bundle)
    tarball = demo_bundle / demo.docker_tarball().path
    root = tmp_path_factory.mktemp("sites")
    with standin_sites(root, local_arch(), demo.docker_version, docker_tarball=tarball) as made:
        yield made


@pytest.fixture(scope="module")
def built(sites: Sites, demo_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    demo = load_manifest(demo_bundle)
    image = demo.test_image()
    assert image is not None
    out = tmp_path_factory.mktemp("built") / "bundle"
    with SiteServer(sites.docker) as docker, SiteServer(sites.nvidia) as nvidia:
        result = subprocess.run(
            [sys.executable, "-m", "gpurun.cli", "bundle", "build", str(out),
             "--docker-version", demo.docker_version, "--arch", local_arch(),
             "--docker-mirror", docker.url, "--nvidia-mirror", nvidia.url,
             "--key", str(sites.key.public_key), "--test-image",
             str(demo_bundle / image.path), "--no-progress"],
            cwd=PROJECT, capture_output=True, text=True, timeout=900, check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.fixture(scope="module")
def installed(built: Path, sandbox_hosts, tmp_path_factory: pytest.TempPathFactory):
    host = sandbox_hosts.start("bbuild")
    folder = tmp_path_factory.mktemp("install")
    inventory = write_inventory(folder / "inventory.yaml", host, bundle_dir=str(built))
    outputs = folder / "outputs"
    run = gpurun_run(inventory, outputs)
    assert run.returncode == 0, run.stdout + run.stderr
    [record] = run_records(outputs, host.name)
    return host, inventory, outputs, record


def test_built_bundle_installs(installed) -> None:
    host, _, outputs, record = installed
    assert record["status"] == "completed"
    assert [step["name"] for step in record["steps"]] == STEP_NAMES
    for step in record["steps"]:
        notebook = outputs / host.name / record["run_id"] / step["notebook"]
        assert error_outputs(notebook) == [], notebook


def test_toolkit_packages_at_bundle_version(installed, sandbox_hosts) -> None:
    host = installed[0]
    result = sandbox_hosts.run(host, ["dpkg-query", "-W", "-f", "${Package} ${Version}\n",
                                      "libnvidia-container1", "libnvidia-container-tools",
                                      "nvidia-container-toolkit-base",
                                      "nvidia-container-toolkit"])
    assert result.returncode == 0, result.stderr
    versions = dict(line.split() for line in result.stdout.splitlines())
    assert set(versions.values()) == {"1.17.2-1"}
    assert len(versions) == 4


def test_docker_runs_nvidia_runtime(installed, sandbox_hosts) -> None:
    host = installed[0]
    result = sandbox_hosts.run(host, ["docker", "info", "--format", "{{json .}}"])
    info = json.loads(result.stdout)
    assert "nvidia" in info["Runtimes"]
    assert info["DefaultRuntime"] == "nvidia"


def test_host_steps_reject_unsigned_change(installed, built: Path, tmp_path: Path) -> None:
    host, inventory, _, _ = installed
    # A package swapped after the build, with the manifest rewritten to match it: only the
    # signed index in the bundle shows the change, and the steps must stop on it.
    tampered = tmp_path / "tampered"
    subprocess.run(["cp", "-a", str(built), str(tampered)], check=True)
    manifest = load_manifest(tampered)
    entry = next(f for f in manifest.files if f.name == "nvidia-container-toolkit-base")
    (tampered / entry.path).write_bytes(b"a package someone else built\n")
    files = [replace(f, size=(tampered / f.path).stat().st_size,
                     sha256=sha256_file(tampered / f.path)) if f is entry else f
             for f in manifest.files]
    write_manifest(tampered, replace(manifest, files=files))

    outputs = tmp_path / "outputs"
    run = gpurun_run(inventory, outputs, "--steps", "preflight", "--plan",
                     "--bundle", str(tampered))
    assert run.returncode != 0
    assert f"{entry.path}: its size is 29 bytes" in run.stdout + run.stderr
