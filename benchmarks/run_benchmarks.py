#!/usr/bin/env python3
"""Measure gpurun on sandbox hosts against a shell script and an Ansible playbook.

Run as root from the repository root, after `pip install -e '.[bench]'`:

    .venv/bin/python benchmarks/run_benchmarks.py

It boots a fresh sandbox host for every install, so that each one starts from the same bare
host. It prints five figures and rewrites docs/benchmarks.md with them:
  (a) gpurun's whole chain on one host / benchmarks/manual_install.sh on another one;
  (b) a second gpurun run that changes nothing / the first run;
  (c) N hosts at --parallel N / one host, for N = 2 and 4;
  (d) gpurun / benchmarks/playbook.yml run by ansible-playbook, on 2 hosts, 2 at a time;
  (e) the control node's peak memory (PSS of the whole process tree) per concurrent host.
Every install is checked afterwards: Docker must report nvidia as its default runtime.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from measure import (
    VENV_BIN,
    Timed,
    install_python,
    load_average,
    run_on,
    ssh_base,
    timed,
    write_inventory,
)

from gpurun.bundle.manifest import Manifest
from gpurun.demo import build_demo_bundle
from gpurun.operations.service import UNITS, render_unit
from gpurun.sandbox import SandboxHost, down, up

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
DOCS = ROOT / "docs" / "benchmarks.md"
PARALLEL_COUNTS = (2, 4)
# The line in docs/benchmarks.md after which the text is written by hand: a new run keeps it.
KEPT_BELOW = "<!-- Written by hand below this line; run_benchmarks.py keeps it. -->\n"
NEW_NOTES = "\n## Notes\n\nWhere the time goes, and what was changed after each run.\n"
ANSIBLE_HOSTS = 2
SECOND_RUN = "gpurun second run, median of the three"


class Bench:
    """The state of one benchmark run: its folder, the bundle, and the hosts it booted."""

    def __init__(self, workdir: Path, bundle: Path, manifest: Manifest, prefix: str) -> None:
        self.workdir, self.bundle, self.manifest, self.prefix = workdir, bundle, manifest, prefix
        self.booted: list[str] = []
        self.seconds: dict[str, float] = {}
        self.peak_mib: dict[str, float] = {}

    def boot(self, role: str, count: int) -> list[SandboxHost]:
        names = [f"{self.prefix}{role}{n}" for n in range(1, count + 1)]
        self.booted += names
        hosts = up(names, inventory=self.workdir / "sandbox.yaml")
        install_python(hosts, self.workdir)
        return hosts

    def remove(self, hosts: list[SandboxHost]) -> None:
        names = [host.name for host in hosts]
        down(names)
        self.booted = [name for name in self.booted if name not in names]

    def gpurun(self, label: str, hosts: list[SandboxHost], parallel: int = 1) -> Timed:
        inventory = write_inventory(self.workdir / f"{label}.yaml", hosts)
        argv = [str(VENV_BIN / "gpurun"), "run", "--inventory", str(inventory), "--outputs",
                str(self.workdir / "outputs"), "--bundle", str(self.bundle),
                "--parallel", str(parallel)]
        # An empty cache, so that the first run hashes the bundle as a first run does.
        env = {**os.environ, "GPURUN_CACHE_DIR": str(self.workdir / "cache")}
        result = timed(argv, label=f"gpurun ({label})", sample_memory=True, env=env, cwd=ROOT)
        self._record(label, result)
        return result

    def manual(self, label: str, hosts: list[SandboxHost]) -> Timed:
        """Run the shell script on every host at once, each over its own ssh."""
        self._manual_files()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            list(pool.map(self._manual_install, hosts))
        outcome = Timed(time.monotonic() - started)
        self._record(label, outcome)
        return outcome

    def _manual_install(self, host: SandboxHost) -> None:
        staging = self._manual_files()
        subprocess.run(["scp", "-q", "-r", *ssh_base(host), str(staging),
                        f"{host.user}@{host.address}:/root/bundle"], check=True, timeout=900)
        tarball = self.manifest.docker_tarball().path
        image = self.manifest.test_image()
        assert image is not None, "the demo bundle has a test image"
        packages = [Path(p.path).name for p in self.manifest.toolkit_packages()]
        script = (BENCH / "manual_install.sh").read_text()
        ssh = ["ssh", *ssh_base(host), f"{host.user}@{host.address}", "sh", "-s", "--",
               "/root/bundle", Path(tarball).name, Path(image.path).name, str(image.image),
               *packages]
        result = subprocess.run(ssh, input=script, capture_output=True, text=True, timeout=900,
                                check=False)
        if result.returncode != 0:
            raise SystemExit(f"manual_install.sh failed on {host.name}:\n{result.stderr}")

    def ansible(self, label: str, hosts: list[SandboxHost]) -> Timed:
        playbook_bin = VENV_BIN / "ansible-playbook"
        if not playbook_bin.exists():
            raise SystemExit(f"{playbook_bin} not found\n  next step: pip install -e '.[bench]'")
        inventory = write_inventory(self.workdir / f"{label}.yaml", hosts)
        image = self.manifest.test_image()
        assert image is not None, "the demo bundle has a test image"
        variables = {
            "bundle_dir": str(self.bundle), "tarball": self.manifest.docker_tarball().path,
            "binaries": sorted(self.manifest.docker_binaries),
            "units_dir": str(self._manual_files() / "units"),
            "packages": [p.path for p in self.manifest.toolkit_packages()],
            "image_file": image.path, "image_name": image.image,
        }
        (self.workdir / "vars.json").write_text(json.dumps(variables))
        env = {**os.environ, "ANSIBLE_PIPELINING": "True", "ANSIBLE_HOME": str(self.workdir /
               "ansible"), "ANSIBLE_NOCOLOR": "1"}
        argv = [str(playbook_bin), "-i", str(inventory), "-f", str(len(hosts)),
                "-e", f"@{self.workdir / 'vars.json'}", str(BENCH / "playbook.yml")]
        result = timed(argv, label=f"ansible-playbook ({label})", env=env, cwd=ROOT)
        self._record(label, result)
        return result

    def check_installed(self, hosts: list[SandboxHost]) -> None:
        """Stop unless Docker on each host reports nvidia as its default runtime."""
        for host in hosts:
            found = run_on(host, ["docker", "info", "--format", "{{.DefaultRuntime}}"]).strip()
            if found != "nvidia":
                raise SystemExit(f"{host.name}: default runtime {found!r} after the install")

    def _manual_files(self) -> Path:
        """Return a folder with the bundle files the script needs and the rendered units."""
        staging = self.workdir / "manual-bundle"
        if staging.exists():
            return staging
        (staging / "units").mkdir(parents=True)
        image = self.manifest.test_image()
        entries = [self.manifest.docker_tarball(), *self.manifest.toolkit_packages()]
        for entry in [*entries, *([image] if image else [])]:
            (staging / Path(entry.path).name).symlink_to(self.bundle / entry.path)
        for unit in UNITS:
            (staging / "units" / unit).write_text(render_unit(unit, "/usr/bin"))
        return staging

    def _record(self, label: str, result: Timed) -> None:
        self.seconds[label] = result.seconds
        if result.peak_mib:
            self.peak_mib[label] = result.peak_mib
        print(f"  {label}: {result.seconds:.1f} s" +
              (f", peak {result.peak_mib:.0f} MiB" if result.peak_mib else ""), flush=True)


def measure(bench: Bench) -> dict[str, float]:
    """Run every install and return the figures (a) to (e)."""
    measure_one_host(bench)

    for count in PARALLEL_COUNTS:
        print(f"(c) {count} hosts at --parallel {count}", flush=True)
        hosts = bench.boot(f"p{count}-", count)
        bench.gpurun(f"gpurun {count} hosts", hosts, parallel=count)
        bench.check_installed(hosts)
        bench.remove(hosts)

    # The same ratio for the shell script shows what the machine itself allows: the hosts
    # share the control node's cores.
    largest = max(PARALLEL_COUNTS)
    print(f"(c) reference: the shell script on {largest} hosts at once", flush=True)
    hosts = bench.boot(f"m{largest}-", largest)
    bench.manual(f"shell script {largest} hosts", hosts)
    bench.check_installed(hosts)
    bench.remove(hosts)

    print(f"(d) ansible-playbook on {ANSIBLE_HOSTS} hosts, {ANSIBLE_HOSTS} at a time",
          flush=True)
    hosts = bench.boot("a", ANSIBLE_HOSTS)
    bench.ansible(f"ansible {ANSIBLE_HOSTS} hosts", hosts)
    bench.check_installed(hosts)
    bench.remove(hosts)

    seconds = bench.seconds
    first = seconds["gpurun first run"]
    return {
        **one_host_figures(bench),
        **{f"c{n}": seconds[f"gpurun {n} hosts"] / first for n in PARALLEL_COUNTS},
        "c_script": seconds[f"shell script {largest} hosts"] / seconds["shell script"],
        "d": seconds[f"gpurun {ANSIBLE_HOSTS} hosts"] / seconds[f"ansible {ANSIBLE_HOSTS} hosts"],
        "e": bench.peak_mib[f"gpurun {largest} hosts"] / largest,
        "e1": bench.peak_mib["gpurun first run"],
    }


def measure_one_host(bench: Bench) -> None:
    print("(a, b) one host: gpurun twice, the shell script once", flush=True)
    [gpurun_host] = bench.boot("g", 1)
    [manual_host] = bench.boot("m", 1)
    bench.gpurun("gpurun first run", [gpurun_host])
    bench.check_installed([gpurun_host])
    # The median of three no-change runs, as one run on a shared machine is noisy.
    repeats = [bench.gpurun(f"gpurun second run, try {n}", [gpurun_host]).seconds
               for n in range(1, 4)]
    bench.seconds[SECOND_RUN] = statistics.median(repeats)
    print(f"  {SECOND_RUN}: {bench.seconds[SECOND_RUN]:.1f} s")
    bench.manual("shell script", [manual_host])
    bench.check_installed([manual_host])
    bench.remove([gpurun_host, manual_host])


def one_host_figures(bench: Bench) -> dict[str, float]:
    first = bench.seconds["gpurun first run"]
    return {"a": first / bench.seconds["shell script"],
            "b": bench.seconds[SECOND_RUN] / first}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return (f"{cpu}, {os.cpu_count()} cores, {memory_kib / 2**20:.0f} GiB memory, "
            f"Linux {platform.release()}, Python {platform.python_version()}")


def met(condition: bool) -> str:
    return "yes" if condition else "no"


def ansible_version() -> str:
    output = subprocess.run([str(VENV_BIN / "ansible-playbook"), "--version"],
                            capture_output=True, text=True, check=False).stdout
    return output.splitlines()[0] if output else "not installed"


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=False).stdout.strip() or "unknown"


def write_docs(figures: dict[str, float], bench: Bench, loads: tuple[str, str]) -> None:
    largest = max(PARALLEL_COUNTS)
    rows = [
        ("(a)", "gpurun's whole chain on one host / the shell script", f"{figures['a']:.2f}x",
         "at most 1.3x", met(figures["a"] <= 1.3)),
        ("(b)", "second run, nothing to change / first run", f"{figures['b']:.2f}x",
         "at most 0.2x", met(figures["b"] <= 0.2)),
        *((f"(c) N={n}", f"{n} hosts at --parallel {n} / one host", f"{figures[f'c{n}']:.2f}x",
           "at most 1.6x" if n == largest else "none (1.0x is perfect)",
           met(figures[f"c{n}"] <= 1.6) if n == largest else "-") for n in PARALLEL_COUNTS),
        ("(c) reference", f"the shell script on {largest} hosts at once / on one host",
         f"{figures['c_script']:.2f}x", "none (what this machine allows)", "-"),
        ("(d)", f"gpurun / ansible-playbook, {ANSIBLE_HOSTS} hosts at a time",
         f"{figures['d']:.2f}x", "at most 1.0x", met(figures["d"] <= 1.0)),
        ("(e)", (f"control node peak memory per concurrent host, {largest} hosts (one host "
                 f"alone: {figures['e1']:.0f} MiB)"), f"{figures['e']:.0f} MiB", "none", "-"),
    ]
    table = "\n".join(f"| {' | '.join(row)} |" for row in rows)
    times = "\n".join(f"| {label} | {seconds:.1f} |" for label, seconds in bench.seconds.items())
    DOCS.parent.mkdir(exist_ok=True)
    notes_by_hand = DOCS.read_text().partition(KEPT_BELOW)[2] if DOCS.exists() else ""
    DOCS.write_text(f"""# Benchmarks

Written by `benchmarks/run_benchmarks.py` (see benchmarks/README.md); rerun it to refresh.

- Date: {time.strftime("%Y-%m-%d %H:%M %Z")}
- Machine: {machine()}
- gpurun commit: {commit()}; {ansible_version()}
- Load average (1, 5, 15 min) at the start: {loads[0]}; at the end: {loads[1]}

These numbers were taken on a shared 2-core machine where other jobs ran at the same time, so
single figures can be off by tens of percent. The ratios are the result; absolute times are
listed for context only.

| figure | what | measured | target | met |
|---|---|---|---|---|
{table}

Every install starts on a fresh sandbox host booted from the same image, and is checked
afterwards (`docker info` must show nvidia as the default runtime). The shell script is
benchmarks/manual_install.sh: the classic steps with no checks, backups or records. The
playbook is benchmarks/playbook.yml: the same steps in Ansible, with pipelining on and facts
gathered (Ansible's default). Memory is the proportional set size (PSS) of the `gpurun`
process and all its children (workers, kernels, ssh), sampled every 0.2 s.

## Wall-clock seconds

| run | seconds |
|---|---|
{times}

{KEPT_BELOW}{notes_by_hand or NEW_NOTES}""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="Keep the work folder.")
    parser.add_argument("--one-host", action="store_true",
                        help="Measure only (a) and (b), print them, and leave the docs alone.")
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run the benchmark as root: sandbox hosts need systemd-nspawn")

    workdir = Path(tempfile.mkdtemp(prefix="gpurun-bench-"))
    bundle = ROOT / "bundles" / "demo"
    print(f"building the demo bundle in {bundle} (cached after the first time)", flush=True)
    manifest = build_demo_bundle(bundle)
    bench = Bench(workdir, bundle, manifest, prefix=f"b{os.getpid() % 1000}")
    start_load = load_average()
    try:
        if arguments.one_host:
            measure_one_host(bench)
        else:
            figures = measure(bench)
    finally:
        if bench.booted:
            down(bench.booted)
    if arguments.one_host:
        figures = one_host_figures(bench)
        print(f"\n(a) gpurun / shell script, one host: {figures['a']:.2f}x")
        print(f"(b) second run / first run:          {figures['b']:.2f}x")
        print(f"load average at the start: {start_load}; at the end: {load_average()}")
        return
    write_docs(figures, bench, (start_load, load_average()))

    print(f"\n(a) gpurun / shell script, one host:        {figures['a']:.2f}x")
    print(f"(b) second run / first run:                 {figures['b']:.2f}x")
    for n in PARALLEL_COUNTS:
        print(f"(c) {n} hosts at --parallel {n} / one host:   {figures[f'c{n}']:.2f}x")
    print(f"(c) the shell script, {max(PARALLEL_COUNTS)} hosts / one host:  "
          f"{figures['c_script']:.2f}x")
    print(f"(d) gpurun / ansible-playbook, {ANSIBLE_HOSTS} hosts:     {figures['d']:.2f}x")
    print(f"(e) peak memory per concurrent host:        {figures['e']:.0f} MiB")
    print(f"wrote {DOCS.relative_to(ROOT)}; work folder {workdir}"
          + ("" if arguments.keep else " (removed)"))
    if not arguments.keep:
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


if __name__ == "__main__":
    sys.exit(main())
