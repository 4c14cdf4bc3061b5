"""Start and stop the systemd-nspawn container behind each sandbox host."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from gpurun.errors import SandboxError
from gpurun.sandbox.network import NETNS_DIR, netns_name
from gpurun.sandbox.paths import HostLayout

log = logging.getLogger("gpurun.sandbox")

INITS = ("systemd", "none")
TINI = "/usr/bin/tini"
SSHD_ONLY_INIT = "/usr/local/sbin/gpurun-sshd-only"

# systemd powers off on SIGRTMIN+4, and tini passes SIGTERM on to sshd.
POWEROFF_SIGNALS = {"systemd": signal.SIGRTMIN + 4, "none": signal.SIGTERM}

PROPAGATE_DIR = Path("/run/systemd/nspawn/propagate")

# The Popen of each nspawn this process started, kept so that the exited nspawn gets reaped.
_started: dict[int, subprocess.Popen[bytes]] = {}


def nspawn_argv(name: str, layout: HostLayout, init: str) -> list[str]:
    """Build the systemd-nspawn command line of host `name`.

    The control node may run without systemd as PID 1 and without machined, hence
    --register=no --keep-unit. Docker inside gets all capabilities and the keyring and bpf
    system calls, because without them runc fails with "unable to join session keyring".
    Its overlay2 storage needs a plain folder at /var/lib/docker, because overlayfs cannot
    use the host's overlay root as its upper layer.
    """
    argv = [
        "systemd-nspawn",
        f"--directory={layout.root}",
        f"--machine={name}",
        "--register=no",
        "--keep-unit",
        f"--network-namespace-path={NETNS_DIR / netns_name(name)}",
        f"--bind={layout.docker_data}:/var/lib/docker",
        "--capability=all",
        "--system-call-filter=@keyring bpf",
        "--link-journal=no",
        "--resolv-conf=off",
        "--console=read-only",
    ]
    if init == "systemd":
        return argv + ["--boot"]
    return argv + ["--", TINI, "--", SSHD_ONLY_INIT]


def start_container(name: str, layout: HostLayout, init: str) -> int:
    """Start host `name`'s container in its own session and return the nspawn pid."""
    environment = dict(os.environ)
    # Lets Docker inside the host write to /proc/sys and /sys like on a real machine.
    environment["SYSTEMD_NSPAWN_API_VFS_WRITABLE"] = "1"

    remove_propagate_folder(name)
    argv = nspawn_argv(name, layout, init)
    log.debug("sandbox %s: %s", name, " ".join(argv))
    with open(layout.log, "ab") as output:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
    _started[process.pid] = process
    return process.pid


def remove_propagate_folder(name: str) -> None:
    """Remove the folder nspawn keeps for a machine name, left behind when nspawn was killed.

    nspawn refuses to start a machine whose folder exists on a disk file system, which /run is
    on a machine without systemd as PID 1.
    """
    folder = PROPAGATE_DIR / name
    if folder.is_dir() and not folder.is_mount():
        shutil.rmtree(folder, ignore_errors=True)


def _read_proc(pid: int, name: str) -> str | None:
    try:
        return (Path("/proc") / str(pid) / name).read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None


def is_container_running(pid: int | None, layout: HostLayout) -> bool:
    """Return True when `pid` is still this host's live nspawn, not a reused pid or a zombie."""
    if pid is None:
        return False
    process = _started.get(pid)
    if process is not None:
        # Our own child: poll() also covers the moment before it has exec'd nspawn.
        return process.poll() is None

    stat = _read_proc(pid, "stat")
    cmdline = _read_proc(pid, "cmdline")
    if stat is None or cmdline is None:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return (
        state != "Z"
        and "(systemd-nspawn)" in stat
        and f"--directory={layout.root}" in cmdline.split("\0")
    )


def _leader_pid(pid: int) -> int | None:
    # The container's PID 1 is nspawn's only child (seen with systemd-nspawn 252).
    children = _read_proc(pid, f"task/{pid}/children")
    if not children or not children.split():
        return None
    return int(children.split()[0])


def _wait_for_exit(pid: int, layout: HostLayout, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_container_running(pid, layout):
            _started.pop(pid, None)
            return True
        time.sleep(0.2)
    return False


def _signal(pid: int, signal_number: int) -> None:
    # The process may exit on its own between the check and the signal.
    try:
        os.kill(pid, signal_number)
    except ProcessLookupError:
        pass


def stop_container(
    name: str, pid: int | None, layout: HostLayout, init: str, timeout: float = 30.0
) -> None:
    """Power the host off the way its init expects, or kill it when that takes over `timeout` s."""
    if not is_container_running(pid, layout):
        return
    assert pid is not None

    leader = _leader_pid(pid)
    if leader is not None:
        _signal(leader, POWEROFF_SIGNALS[init])
    else:
        _signal(pid, signal.SIGTERM)
    if _wait_for_exit(pid, layout, timeout):
        return

    log.warning("sandbox %s did not power off within %.0f s, killing it", name, timeout)
    if leader is not None:
        _signal(leader, signal.SIGKILL)
    _signal(pid, signal.SIGKILL)
    if not _wait_for_exit(pid, layout, 10.0):
        raise SandboxError(
            f"sandbox host {name} (systemd-nspawn pid {pid}) is still running after SIGKILL. "
            f"Inspect it with: ps -o pid,stat,cmd --ppid {pid}"
        )
