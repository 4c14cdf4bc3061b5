"""Secrets in gpurun's environment reach no notebook, HTML file or log under outputs/.

The fleet's second host logs in as an ordinary user whose sudo password gpurun reads from
an environment variable, and an unrelated token is in the same environment. gpurun runs
with -v, which logs every command.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from fleet import SUDO_PASSWORD_VARIABLE, TOKEN_VARIABLE, recorded_fleet

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def fleet(sandbox_hosts, demo_bundle, tmp_path_factory):
    return recorded_fleet(sandbox_hosts, demo_bundle, tmp_path_factory.mktemp("fleet"))


def files_containing(root, secret: str) -> list[str]:
    """Return the files under root whose bytes contain secret."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and secret.encode() in path.read_bytes():
            found.append(str(path.relative_to(root)))
    return found


def test_outputs_hold_records_to_search(fleet):
    kinds = {path.suffix for path in fleet.outputs.rglob("*") if path.is_file()}
    assert {".ipynb", ".html", ".json", ".log"} <= kinds
    assert (fleet.outputs / "logs" / "gpurun.log").stat().st_size > 0


def test_sudo_password_was_used(fleet, sandbox_hosts):
    # The secret must have gone through gpurun, or not finding it would prove nothing. The
    # login is not root and its sudo requires a password, yet the run completed.
    host = fleet.hosts[1]
    assert host.user != "root"
    probe = sandbox_hosts.run(host, ["sudo", "-n", "-k", "true"])
    assert "password is required" in probe.stderr
    record = json.loads((fleet.outputs / host.name / fleet.first_run_id / "run.json").read_text())
    assert record["status"] == "completed"
    assert all(step["operator"]["ssh_user"] == host.user for step in record["steps"])


@pytest.mark.parametrize("variable", [SUDO_PASSWORD_VARIABLE, TOKEN_VARIABLE])
def test_secret_absent_from_outputs(fleet, variable):
    assert files_containing(fleet.outputs, fleet.secrets[variable]) == []


@pytest.mark.parametrize("variable", [SUDO_PASSWORD_VARIABLE, TOKEN_VARIABLE])
def test_secret_absent_from_host_records(fleet, sandbox_hosts, variable):
    for host in fleet.hosts:
        # As root, so that every journal and backup under /var/lib/gpurun can be read.
        as_root = dataclasses.replace(host, user="root")
        result = sandbox_hosts.run(as_root, ["grep", "-rlF", "--", fleet.secrets[variable],
                                             "/var/lib/gpurun"])
        assert result.returncode == 1, result.stdout + result.stderr


def test_variable_name_is_recorded(fleet):
    # The parameter names the variable; only its value is secret.
    host = fleet.hosts[1]
    preflight = fleet.outputs / host.name / fleet.first_run_id / "01-preflight.ipynb"
    assert SUDO_PASSWORD_VARIABLE in preflight.read_text()
