"""Helpers for the runtime and preflight tests: run chosen steps on a sandbox host and read back."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain import gpurun_run, run_records, write_inventory

DAEMON_JSON = "/etc/docker/daemon.json"
GPURUN_DROP_IN = "/etc/systemd/system/docker.service.d/zz-gpurun-runtime.conf"

# What a real nvidia-smi prints, with exit code 9, on a host whose driver is not loaded.
NVIDIA_SMI_WITHOUT_DRIVER = """#!/bin/sh
echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. \
Make sure that the latest NVIDIA driver is installed and running."
exit 9
"""


def ssh(host: Any, script: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run a shell script on host as root over ssh and return the finished process."""
    return subprocess.run(host.ssh_argv(["sh", "-c", script]), capture_output=True, text=True,
                          timeout=timeout, check=False)


def ssh_ok(host: Any, script: str, timeout: float = 180) -> str:
    """Run a shell script on host and return its stdout; fail the test when it fails."""
    result = ssh(host, script, timeout)
    assert result.returncode == 0, f"{script}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def put_file(host: Any, path: str, text: str, mode: str = "0644") -> None:
    """Write text to path on host (the test's own input, not through gpurun)."""
    script = f'mkdir -p "$(dirname {path})" && cat > {path} && chmod {mode} {path}'
    result = subprocess.run(host.ssh_argv(["sh", "-c", script]), input=text,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def read_file(host: Any, path: str) -> str | None:
    result = ssh(host, f"cat {path}")
    return result.stdout if result.returncode == 0 else None


def docker_info(host: Any) -> dict[str, Any] | None:
    """Return `docker info` from the host's daemon, or None when no daemon answers."""
    result = ssh(host, "docker info --format '{{json .}}'")
    info = json.loads(result.stdout) if result.returncode == 0 else None
    return None if not info or info.get("ServerErrors") else info


@dataclass
class StepRuns:
    """gpurun runs of chosen steps on one sandbox host, each with its own inventory variables."""

    host: Any
    bundle: Path
    folder: Path
    outputs: Path = field(init=False)
    first: dict[str, Any] = field(default_factory=dict)  # the record of the host's first run

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.outputs = self.folder / "outputs"

    def run(self, steps: str = "", **variables: Any) -> dict[str, Any]:
        """Run the steps (all when empty) and return the run's record from run.json."""
        inventory = write_inventory(self.folder / "inventory.yaml", self.host,
                                    bundle_dir=str(self.bundle), **variables)
        args = ["--steps", steps] if steps else []
        result = gpurun_run(inventory, self.outputs, *args)
        record = run_records(self.outputs, self.host.name)[-1]
        record["process_output"] = result.stdout + result.stderr
        return record

    def notebook(self, record: dict[str, Any], step: str) -> Path:
        [entry] = [s for s in record["steps"] if s["name"] == step]
        return self.outputs / self.host.name / record["run_id"] / entry["notebook"]

    def step(self, record: dict[str, Any], step: str) -> dict[str, Any]:
        [entry] = [s for s in record["steps"] if s["name"] == step]
        return entry
