"""Two sandbox hosts that went through the main job, recorded once for several test files.

The runs happen with secrets planted in gpurun's environment: the sudo password of the second
host's login (read through sudo_password_env) and an unrelated token. gpurun's console output
is saved under outputs/logs/, as an operator piping it to a file would, so that the secrets
test can search every file under outputs/.

Each test module requests the fleet through its own fixture. The first one records it and
the others reuse it within the same pytest session, and the sandbox_hosts fixture removes
the hosts at the session's end.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from chain import GPURUN, PROJECT

from gpurun.sandbox.users import add_sudo_user

SUDO_PASSWORD_VARIABLE = "GPURUN_TEST_SUDO_PASSWORD"
TOKEN_VARIABLE = "GPURUN_TEST_API_TOKEN"
SUDO_USER = "fleetadmin"


@dataclass
class Fleet:
    """The recorded runs of two hosts: the main job on both, then two short runs on one.

    The second run repeats two steps, which change nothing; the third claims the wrong
    package format, so its preflight fails.
    """

    hosts: list[Any]
    outputs: Path
    inventory: Path
    first_run_id: str
    second_run_id: str
    failed_run_id: str
    secrets: dict[str, str]


_recorded: dict[int, Fleet] = {}


def _inventory_entry(host: Any, **variables: Any) -> dict[str, Any]:
    return {
        "ansible_host": host.address,
        "ansible_port": host.port,
        "ansible_user": host.user,
        "ansible_ssh_private_key_file": str(host.key_file),
        "gpurun_known_hosts_file": str(host.known_hosts_file),
        **variables,
    }


def _gpurun(args: list[str], env: dict[str, str], log: Path) -> subprocess.CompletedProcess[str]:
    """Run gpurun verbosely with env, append its console output to log, and return it."""
    result = subprocess.run([*GPURUN, "-v", *args], cwd=PROJECT, env=env, capture_output=True,
                            text=True, timeout=1200, check=False)
    with log.open("a") as stream:
        stream.write(f"$ gpurun -v {' '.join(args)}\n{result.stdout}{result.stderr}")
    return result


def recorded_fleet(sandbox_hosts: Any, demo_bundle: Path, folder: Path) -> Fleet:
    """Return the fleet's records, running the main job on two new hosts the first time."""
    key = id(sandbox_hosts)
    if key in _recorded:
        return _recorded[key]

    planted = {SUDO_PASSWORD_VARIABLE: "pw-" + secrets.token_hex(12),
               TOKEN_VARIABLE: "tok-" + secrets.token_hex(16)}
    first = sandbox_hosts.start("fleet1")
    second = add_sudo_user(sandbox_hosts.start("fleet2"), SUDO_USER,
                           password=planted[SUDO_PASSWORD_VARIABLE])
    inventory = folder / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {
        first.name: _inventory_entry(first),
        second.name: _inventory_entry(second, ansible_become=True,
                                      sudo_password_env=SUDO_PASSWORD_VARIABLE),
    }}}))

    outputs = folder / "outputs"
    logs = outputs / "logs"
    logs.mkdir(parents=True)
    log = logs / "gpurun.log"
    env = {**os.environ, **planted}
    common = ["--inventory", str(inventory), "--outputs", str(outputs),
              "--bundle", str(demo_bundle)]
    run = _gpurun(["run", *common, "--parallel", "2"], env, log)
    assert run.returncode == 0, run.stdout + run.stderr
    again = _gpurun(["run", *common, "--hosts", first.name, "--steps",
                     "preflight,docker-binaries"], env, log)
    assert again.returncode == 0, again.stdout + again.stderr
    # Claiming rpm on a Debian host with a deb bundle is a blocking preflight finding.
    wrong_format = folder / "wrong-format.yaml"
    wrong_format.write_text(yaml.safe_dump({"all": {"hosts": {
        first.name: _inventory_entry(first, package_format="rpm")}}}))
    failed = _gpurun(["run", "--inventory", str(wrong_format), "--outputs", str(outputs),
                      "--bundle", str(demo_bundle), "--steps", "preflight"], env, log)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    report = _gpurun(["report", str(outputs)], env, log)
    assert report.returncode == 0, report.stdout + report.stderr

    first_run, second_run, failed_run = sorted(
        path.name for path in (outputs / first.name).iterdir())
    fleet = Fleet(hosts=[first, second], outputs=outputs, inventory=inventory,
                  first_run_id=first_run, second_run_id=second_run, failed_run_id=failed_run,
                  secrets=planted)
    _recorded[key] = fleet
    return fleet
