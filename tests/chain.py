"""Helpers for tests that run gpurun's runbooks on sandbox hosts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import yaml

PROJECT = Path(__file__).resolve().parent.parent
GPURUN = [sys.executable, "-m", "gpurun.cli"]
# The demo bundle's cache of Debian packages, shared between test runs.
DEB_CACHE = Path("/var/cache/gpurun/debs")


def write_inventory(path: Path, host: Any, **variables: Any) -> Path:
    """Write an inventory with one sandbox host and the given runbook variables."""
    entry = {
        "ansible_host": host.address,
        "ansible_port": host.port,
        "ansible_user": host.user,
        "ansible_ssh_private_key_file": str(host.key_file),
        "gpurun_known_hosts_file": str(host.known_hosts_file),
        **variables,
    }
    path.write_text(yaml.safe_dump({"all": {"hosts": {host.name: entry}}}))
    return path


def gpurun_run(inventory: Path, outputs: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `gpurun run` as an operator would and return the finished process."""
    return subprocess.run(
        [*GPURUN, "run", "--inventory", str(inventory), "--outputs", str(outputs), *args],
        cwd=PROJECT, capture_output=True, text=True, timeout=900, check=False,
    )


def run_records(outputs: Path, host: str) -> list[dict[str, Any]]:
    """Return the run.json records of a host, oldest first."""
    folders = sorted((outputs / host).iterdir())
    return [json.loads((folder / "run.json").read_text()) for folder in folders]


def error_outputs(notebook: Path) -> list[str]:
    """Return the error outputs of an executed notebook, as 'name: value' lines."""
    node = nbformat.read(str(notebook), as_version=4)
    return [f"{o.ename}: {o.evalue}" for cell in node.cells for o in cell.get("outputs", [])
            if o.output_type == "error"]


def papermill_statuses(notebook: Path) -> set[str]:
    """Return the papermill status of each code cell of an executed notebook."""
    node = nbformat.read(str(notebook), as_version=4)
    return {cell.metadata.get("papermill", {}).get("status", "missing")
            for cell in node.cells if cell.cell_type == "code"}


def notebook_text(notebook: Path) -> str:
    """Return every text output of an executed notebook (streams, errors, plain text), joined."""
    node = nbformat.read(str(notebook), as_version=4)
    parts = []
    for cell in node.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif output.output_type == "error":
                parts.append(f"{output.ename}: {output.evalue}")
            elif "text/plain" in output.get("data", {}):
                parts.append(output["data"]["text/plain"])
    return "\n".join(parts)


def converge_twice(sandbox_hosts: Any, name: str, folder: Path, *,
                   start_options: dict[str, Any] | None = None,
                   **variables: Any) -> tuple[Any, Path, dict[str, Any], dict[str, Any]]:
    """Boot a sandbox host and run the main job on it twice.

    Returns the host, the outputs folder and the run.json records of the two runs.
    """
    host = sandbox_hosts.start(name, **(start_options or {}))
    inventory = write_inventory(folder / "inventory.yaml", host, **variables)
    outputs = folder / "outputs"
    for _ in range(2):
        run = gpurun_run(inventory, outputs)
        assert run.returncode == 0, run.stdout + run.stderr
    first, second = run_records(outputs, host.name)
    return host, outputs, first, second


# The steps whose first run on a bare host must change something.
INSTALLING_STEPS = {"docker-binaries", "docker-service", "nvidia-toolkit", "runtime"}


def assert_installed_without_errors(host: Any, outputs: Path, record: dict[str, Any]) -> None:
    """Check that a first run completed every step, installed, and left no error output."""
    from gpurun.steps import STEP_NAMES

    assert record["status"] == "completed"
    assert [step["name"] for step in record["steps"]] == STEP_NAMES
    changed = {step["name"] for step in record["steps"] if step["changed"]}
    assert changed >= INSTALLING_STEPS
    folder = outputs / host.name / record["run_id"]
    for step in record["steps"]:
        assert error_outputs(folder / step["notebook"]) == [], step["notebook"]


def assert_nothing_changed(record: dict[str, Any]) -> None:
    """Check that every step of a run completed and changed nothing."""
    for step in record["steps"]:
        assert step["status"] == "completed", step
        assert step["changed"] is False, step
