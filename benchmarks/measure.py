"""Helpers of the benchmark: timed commands, peak memory of a process tree, sandbox hosts."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml

from gpurun.demo.debian import fetch_debs
from gpurun.sandbox import SandboxHost

VENV_BIN = Path(sys.executable).parent
DEB_CACHE = Path("/var/cache/gpurun/debs")
SAMPLE_INTERVAL_S = 0.2


@dataclass
class Timed:
    """One timed command: its wall-clock seconds and, if sampled, its peak memory."""

    seconds: float
    peak_mib: float = 0.0


class PeakMemory:
    """Samples the proportional set size (PSS) of a process and all its descendants.

    PSS splits each shared page among the processes that map it, so the sum over a tree is the
    memory the tree really holds. Forked workers share most of their pages, and RSS would
    count those once per worker.
    """

    def __init__(self, process: subprocess.Popen[Any]) -> None:
        self.root = psutil.Process(process.pid)
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        """Stop sampling and return the peak in MiB."""
        self._stop.set()
        self._thread.join()
        return self.peak_bytes / 2**20

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._tree_pss())
            self._stop.wait(SAMPLE_INTERVAL_S)

    def _tree_pss(self) -> int:
        total = 0
        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        for process in processes:
            try:
                total += process.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total


def timed(argv: list[str], *, label: str, sample_memory: bool = False, **popen: Any) -> Timed:
    """Run argv to the end and return its wall-clock time; stop the benchmark if it fails."""
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, **popen)
    sampler = PeakMemory(process) if sample_memory else None
    output, _ = process.communicate()
    seconds = time.monotonic() - started
    peak = sampler.stop() if sampler else 0.0
    if process.returncode != 0:
        raise SystemExit(f"{label} failed (exit status {process.returncode}):\n{output[-4000:]}")
    return Timed(seconds, peak)


def ssh_base(host: SandboxHost) -> list[str]:
    """Return ssh's options for a sandbox host, as a plain operator would type them."""
    return ["-i", str(host.key_file), "-o", f"UserKnownHostsFile={host.known_hosts_file}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"]


def run_on(host: SandboxHost, command: list[str], *, check: bool = True) -> str:
    result = subprocess.run(host.ssh_argv(command), capture_output=True, text=True,
                            timeout=600, check=False)
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed on {host.name}: {result.stderr}")
    return result.stdout


def write_inventory(path: Path, hosts: list[SandboxHost], **variables: Any) -> Path:
    """Write one inventory for both tools: gpurun ignores the ansible_* names it does not use."""
    entries = {}
    for host in hosts:
        entries[host.name] = {
            "ansible_host": host.address,
            "ansible_port": host.port,
            "ansible_user": host.user,
            "ansible_ssh_private_key_file": str(host.key_file),
            "gpurun_known_hosts_file": str(host.known_hosts_file),
            "ansible_ssh_common_args": (f"-o UserKnownHostsFile={host.known_hosts_file} "
                                        f"-o StrictHostKeyChecking=yes"),
            "ansible_python_interpreter": "/usr/bin/python3",
        }
    path.write_text(yaml.safe_dump({"all": {"vars": variables, "hosts": entries}}))
    return path


def install_python(hosts: list[SandboxHost], workdir: Path) -> None:
    """Install Debian's python3 on hosts that lack it: Ansible's modules run in Python.

    gpurun needs no Python on a host; the benchmark installs it on every host anyway, before
    any timing, so that all hosts start alike.
    """
    installed = set(run_on(hosts[0], ["dpkg-query", "-W", "-f", "${Package}\\n"]).split())
    wanted = _dependency_closure("python3") - installed
    if not wanted:
        return
    debs = fetch_debs(sorted(wanted), DEB_CACHE)
    for host in hosts:
        folder = "/root/python-debs"
        run_on(host, ["mkdir", "-p", folder])
        subprocess.run(["scp", "-q", *ssh_base(host), *map(str, debs.values()),
                        f"{host.user}@{host.address}:{folder}/"], check=True, timeout=600)
        # One dpkg call cannot unpack a package before the packages it pre-depends on are
        # configured, so install in rounds; --skip-same-version keeps each round short.
        rounds = (f"for round in 1 2 3 4; do dpkg -i --skip-same-version {folder}/*.deb "
                  f">/dev/null 2>&1 && break; done; dpkg -i --skip-same-version {folder}/*.deb "
                  f">/dev/null && rm -rf {folder}")
        run_on(host, ["sh", "-c", rounds])


def _dependency_closure(package: str) -> set[str]:
    """Return package and all its dependencies, recursively, from this machine's apt index."""
    output = subprocess.run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
         "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", package],
        capture_output=True, text=True, check=True).stdout
    names = set()
    for line in output.splitlines():
        # Top-level lines name a package; indented ones read "  Depends: NAME".
        name = line.strip().partition(": ")[2] if line.startswith(" ") else line.strip()
        if name and not name.startswith("<"):
            names.add(name)
    return names


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
