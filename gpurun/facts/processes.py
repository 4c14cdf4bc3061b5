"""Facts about a daemon named by a pid file: is the pid alive, and is it really that daemon.

A pid file outlives its process after a crash, and the kernel may give the pid to another
program. So a pid file counts only when /proc shows a live process whose executable has the
daemon's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpurun.host import Host

# The kernel appends this to /proc/PID/exe when the file was replaced or removed after exec.
DELETED_SUFFIX = " (deleted)"

# Prints the pid file's state in lines that parse_pid_probe reads: "absent"; "invalid TEXT";
# "gone PID"; or "live PID STATE", the exe link, then one line per argv word.
_PROBE_SCRIPT = r"""
pid_file=$1
if [ ! -f "$pid_file" ]; then echo absent; exit 0; fi
pid=$(head -c 32 "$pid_file" | tr -d ' \n')
case $pid in
    ''|*[!0-9]*) echo "invalid $pid"; exit 0 ;;
esac
if [ ! -r "/proc/$pid/stat" ]; then echo "gone $pid"; exit 0; fi
state=$(sed 's/.*) //' "/proc/$pid/stat" | cut -d' ' -f1)
exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
echo "live $pid $state"
echo "$exe"
tr '\0' '\n' < "/proc/$pid/cmdline"
"""


@dataclass(frozen=True)
class PidFileFacts:
    """The state of a pid file: naming a live process of the expected program, stale, or absent."""

    pid_file: str
    status: str  # "absent", "running" or "stale"
    pid: int | None = None
    exe: str = ""  # the executable's path, without the " (deleted)" mark
    exe_replaced: bool = False  # the executable file changed after the process started
    argv: list[str] = field(default_factory=list)
    detail: str = ""

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def stale(self) -> bool:
        return self.status == "stale"


def parse_pid_probe(pid_file: str, program: str, output: str) -> PidFileFacts:
    """Parse the probe's output into facts about the pid file of `program` (e.g. dockerd)."""
    lines = output.splitlines()
    first = lines[0].split() if lines else ["absent"]
    if first[0] == "absent":
        return PidFileFacts(pid_file, "absent", detail="no pid file")
    if first[0] == "invalid":
        text = " ".join(first[1:])
        return PidFileFacts(pid_file, "stale", detail=f"contains {text!r}, not a pid")
    pid = int(first[1])
    if first[0] == "gone":
        return PidFileFacts(pid_file, "stale", pid, detail=f"no process {pid}")

    state = first[2] if len(first) > 2 else "?"
    exe_link = lines[1] if len(lines) > 1 else ""
    exe = exe_link.removesuffix(DELETED_SUFFIX)
    replaced = exe_link.endswith(DELETED_SUFFIX)
    argv = lines[2:]
    if state == "Z":
        return PidFileFacts(pid_file, "stale", pid, exe, replaced, argv,
                            f"process {pid} has exited (zombie)")
    name = exe.rsplit("/", 1)[-1]
    if name != program:
        what = exe or (argv[0] if argv else "an unknown program")
        return PidFileFacts(pid_file, "stale", pid, exe, replaced, argv,
                            f"pid {pid} is now {what}, not {program}")
    detail = f"pid {pid}, {exe}" + (" (file replaced since start)" if replaced else "")
    return PidFileFacts(pid_file, "running", pid, exe, replaced, argv, detail)


def pid_file(host: Host, path: str, program: str) -> PidFileFacts:
    """Return what the pid file at `path` names on the host, checked against /proc."""
    result = host.run(["sh", "-c", _PROBE_SCRIPT, "sh", path])
    return parse_pid_probe(path, program, result.stdout)


def pids_of(host: Host, program: str) -> list[int]:
    """Return the pids of every process running `program` (pidof matches the executable)."""
    result = host.run(["pidof", program], check=False)
    return sorted(int(pid) for pid in result.stdout.split())
