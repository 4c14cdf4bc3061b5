"""Shared fixtures: real sandbox hosts, booted with systemd-nspawn and reached over ssh."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpurun.host import Host, HostSpec
from gpurun.sandbox import SandboxHost, down, list_hosts, up
from gpurun.sandbox.image import ensure_base

REQUIRED_TOOLS = ("debootstrap", "systemd-nspawn", "ip", "ssh", "ssh-keygen")

# Test runs share the state directory (and its cached base image), so host names carry the
# run's pid to keep parallel runs apart.
RUN_PREFIX = f"t{os.getpid() % 1000}-"


def missing_sandbox_requirements() -> list[str]:
    """Return what this machine lacks for sandbox hosts: root, or a command by name."""
    missing = [] if os.geteuid() == 0 else ["root"]
    return missing + [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


@pytest.fixture(scope="session")
def sandbox_base() -> Path:
    """Return the root folder of the sandbox base image, building it on first use (~1 min)."""
    missing = missing_sandbox_requirements()
    if missing:
        pytest.skip(
            f"sandbox hosts need {', '.join(missing)}. Run the tests as root on a machine "
            f"with debootstrap, systemd-container, iproute2 and openssh-client"
        )
    return ensure_base()


class SandboxHosts:
    """Starts sandbox hosts for tests and removes every one of them at the end of the session."""

    def __init__(self, inventory: Path) -> None:
        self.inventory = inventory
        self._started: dict[str, SandboxHost] = {}

    def start(self, name: str, init: str = "systemd", package_tool: str = "dpkg") -> SandboxHost:
        """Boot host RUN_PREFIX + `name` and return it once ssh logs in."""
        full_name = RUN_PREFIX + name
        # A host of this name that this session did not start was left by a crashed run with
        # the same pid. It is replaced, so that no test gets a used host.
        is_leftover = full_name not in self._started and any(
            host.name == full_name for host in list_hosts()
        )
        if is_leftover:
            down([full_name])
        [host] = up([full_name], init=init, package_tool=package_tool, inventory=self.inventory)
        self._started[full_name] = host
        return host

    def stop(self, host: SandboxHost) -> None:
        """Remove `host` now, for tests that check what `down` leaves behind."""
        self._started.pop(host.name, None)
        down([host.name])

    def run(
        self, host: SandboxHost, command: list[str], timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` (an argv list) on `host` over ssh and return the finished process."""
        return subprocess.run(
            host.ssh_argv(command), capture_output=True, text=True, timeout=timeout, check=False
        )

    def remove_all(self) -> None:
        names = list(self._started)
        self._started.clear()
        existing = {host.name for host in list_hosts()}
        down([name for name in names if name in existing])


@pytest.fixture(scope="session")
def sandbox_hosts(
    sandbox_base: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SandboxHosts]:
    """Start hosts with `sandbox_hosts.start(name, init=...)`. All are removed at session end."""
    hosts = SandboxHosts(tmp_path_factory.mktemp("sandbox") / "inventory.yaml")
    try:
        yield hosts
    finally:
        hosts.remove_all()


@pytest.fixture(scope="session")
def demo_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a demo bundle built once per session (its Debian packages are cached)."""
    from gpurun.demo import build_demo_bundle

    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("the demo bundle needs apt-get and dpkg-deb (a Debian machine)")
    folder = tmp_path_factory.mktemp("bundle") / "demo"
    build_demo_bundle(folder)
    return folder


@pytest.fixture(scope="session")
def demo_rpm_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the demo bundle with the stand-in toolkit as rpm packages, built once per session."""
    from gpurun.demo import build_demo_bundle

    missing = [tool for tool in ("apt-get", "rpmbuild") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the rpm demo bundle needs {', '.join(missing)} (apt-get install rpm)")
    folder = tmp_path_factory.mktemp("bundle-rpm") / "demo"
    build_demo_bundle(folder, package_format="rpm")
    return folder


@pytest.fixture
def local_host() -> Iterator[Host]:
    """A host whose address is `local`: its commands run as root in a real sh on this machine.

    Its run folder (/var/lib/gpurun/runs/<run id>) is removed afterwards.
    """
    spec = HostSpec(name="local-host", address="local", port=0, user="root")
    host = Host(spec=spec, machine=None, run_id=f"test-local-{secrets.token_hex(4)}")
    yield host
    host.close()
    shutil.rmtree(host.run_dir, ignore_errors=True)
