"""containerd and dockerd as managed background processes, on hosts without systemd.

This is the manual start done with care. Each daemon runs in its own session, so it outlives
the ssh login, and has a pid file and a log file. A pid file is trusted only after /proc shows
that the pid really is the daemon. A daemon is stopped with SIGTERM and a wait, and gets
SIGKILL only when the caller allows it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from gpurun import daemon_config
from gpurun.errors import GpurunError, RemoteCommandError
from gpurun.facts import dockerd as dockerd_facts
from gpurun.facts import processes
from gpurun.host import Host
from gpurun.host.changes import FileChange

PID_DIR = "/run/gpurun"
LOG_DIR = "/var/log/gpurun"
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"

# Extra dockerd flags, one per line, that every start of dockerd adds. On these hosts the
# two files take the place of docker.service drop-ins: the first is the operator's, and the
# runtime step writes only the second, with the runtime flags (runtime_config "flags").
DOCKERD_FLAGS_FILE = "/etc/gpurun/dockerd.flags"
DOCKERD_RUNTIME_FLAGS_FILE = "/etc/gpurun/dockerd-runtime.flags"
# The origin named in messages for the flags that every background start of dockerd gets.
START_FLAGS_ORIGIN = "gpurun's background start of dockerd"

# dockerd stops its containers first, 15 s each by default (its shutdown-timeout), so this
# allows for a few slow ones. An estimate, not a measured bound.
STOP_TIMEOUT_S = 60.0
START_TIMEOUT_S = 60.0

# Starts "$@" in a new session, its streams on the log file, PATH set for the programs the
# daemon starts by name (runc, the containerd shim, docker-init, docker-proxy). With a pid
# file argument, the shell writes its own pid and then execs the daemon, which keeps that pid.
_START_SCRIPT = r"""
set -eu
pid_file=$1 log_file=$2 path=$3
shift 3
mkdir -p "$(dirname "$log_file")"
[ -z "$pid_file" ] || mkdir -p "$(dirname "$pid_file")"
# Daemons need more open files than an ssh session's soft limit allows.
ulimit -n "$(ulimit -H -n)" 2>/dev/null || true
printf '%s gpurun starts: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >>"$log_file"
PATH=$path setsid sh -c '[ -z "$0" ] || echo $$ >"$0"; exec "$@"' "$pid_file" "$@" \
    </dev/null >>"$log_file" 2>&1 &
"""


# Prints the process state letter of pid $1, or fails when the pid is gone.
_STATE_SCRIPT = 'kill -0 "$1" 2>/dev/null && sed "s/.*) //" "/proc/$1/stat" | cut -d" " -f1'


@dataclass(frozen=True)
class Daemon:
    """One daemon gpurun starts in the background, and the files it keeps."""

    name: str  # the program's file name, which /proc/PID/exe must show
    pid_file: str
    log_file: str
    # dockerd writes its own pid file (--pidfile), so the start script must not.
    writes_own_pid_file: bool

    def argv(self, bin_dir: str, extra_flags: list[str]) -> list[str]:
        """Return the command line gpurun starts this daemon with."""
        binary = f"{bin_dir}/{self.name}"
        if self.name == "dockerd":
            return [binary, f"--pidfile={self.pid_file}", f"--containerd={CONTAINERD_SOCKET}",
                    *extra_flags]
        return [binary, *extra_flags]


CONTAINERD = Daemon("containerd", f"{PID_DIR}/containerd.pid", f"{LOG_DIR}/containerd.log",
                    writes_own_pid_file=False)
DOCKERD = Daemon("dockerd", f"{PID_DIR}/dockerd.pid", f"{LOG_DIR}/dockerd.log",
                 writes_own_pid_file=True)
DAEMONS = [CONTAINERD, DOCKERD]


def search_path(bin_dir: str) -> str:
    return f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def parse_flags(text: str | None) -> list[str]:
    """Return the flags of a flags file: one per line, blank lines and # comments left out."""
    return [line.strip() for line in (text or "").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def render_runtime_flags(flags: list[str]) -> str:
    """Return DOCKERD_RUNTIME_FLAGS_FILE's text for the runtime flags."""
    header = ("# Written by gpurun's runtime step (runtime_config = \"flags\"): the runtimes as "
              "dockerd flags.\n# gpurun removes this file when the runtimes move to "
              "daemon.json.\n")
    return header + "".join(f"{flag}\n" for flag in flags)


def read_dockerd_flags(host: Host, *, with_runtime_flags: bool = True) -> list[str]:
    """Return the extra dockerd flags from the flags files (none when they are absent)."""
    flags = parse_flags(host.read_text(DOCKERD_FLAGS_FILE))
    if with_runtime_flags:
        flags += parse_flags(host.read_text(DOCKERD_RUNTIME_FLAGS_FILE))
    return flags


def service_command_line(
    host: Host, *, with_runtime_flags: bool = True
) -> dockerd_facts.ServiceCommandLine:
    """Return the command line the next background start of dockerd uses, with each word's origin.

    It has the shape of a systemd unit's, so the runtime step reads both kinds of host alike.
    """
    base = configured_dockerd_argv(host, flags=[])
    operator_flags = parse_flags(host.read_text(DOCKERD_FLAGS_FILE))
    runtime_flags = (parse_flags(host.read_text(DOCKERD_RUNTIME_FLAGS_FILE))
                     if with_runtime_flags else [])
    argv = base + operator_flags + runtime_flags
    origins = ([START_FLAGS_ORIGIN] * len(base) + [DOCKERD_FLAGS_FILE] * len(operator_flags)
               + [DOCKERD_RUNTIME_FLAGS_FILE] * len(runtime_flags))
    files = [DOCKERD_FLAGS_FILE] * bool(operator_flags) + (
        [DOCKERD_RUNTIME_FLAGS_FILE] * bool(runtime_flags))
    return dockerd_facts.ServiceCommandLine(
        unit=DOCKERD.name, files=files, exec_start_file=None, raw_argv=argv,
        command_line=daemon_config.parse_dockerd_argv(argv, origins))


def write_dockerd_flags(host: Host, flags: list[str]) -> FileChange | None:
    """Write the extra dockerd flags, one per line; they apply at dockerd's next start."""
    for flag in flags:
        if "\n" in flag or not flag.startswith("-"):
            raise GpurunError(f"invalid dockerd flag {flag!r}: expected one line starting "
                              f"with '-'")
    header = "# Extra dockerd flags, one per line, added by gpurun at every start of dockerd.\n"
    return host.write_text(DOCKERD_FLAGS_FILE, header + "".join(f"{f}\n" for f in flags))


def start(host: Host, daemon: Daemon, argv: list[str], bin_dir: str, *,
          record: bool = True) -> processes.PidFileFacts:
    """Start the daemon in the background and wait until its pid file names it.

    A stale pid file is removed first. Raises GpurunError with the log's tail when the
    daemon exits or does not come up within START_TIMEOUT_S.
    """
    found = processes.pid_file(host, daemon.pid_file, daemon.name)
    if found.running:
        raise GpurunError(
            f"{daemon.name} already runs on host {host.name} ({found.detail}); gpurun does not "
            f"start a second one\n  next step: stop it first, or run the docker-service step"
        )
    if found.stale:
        _remove_pid_file(host, daemon)

    pid_file_argument = "" if daemon.writes_own_pid_file else daemon.pid_file
    host.run(["sh", "-c", _START_SCRIPT, "sh", pid_file_argument, daemon.log_file,
              search_path(bin_dir), *argv])
    started = _wait_until_running(host, daemon)
    if record:
        _record(host, daemon, "process-started", None, started)
    return started


def stop(
    host: Host, daemon: Daemon, *, timeout: float = STOP_TIMEOUT_S, kill_after_timeout: bool = False,
    record: bool = True,
) -> None:
    """Stop the daemon with SIGTERM and wait for it to exit; SIGKILL only when allowed.

    Raises GpurunError when it is still running after `timeout` seconds and SIGKILL is not
    allowed, so the host keeps a running daemon rather than one killed mid-write.
    """
    found = processes.pid_file(host, daemon.pid_file, daemon.name)
    if not found.running:
        if found.stale:
            _remove_pid_file(host, daemon)
        return
    assert found.pid is not None

    host.run(["kill", "-TERM", str(found.pid)])
    if wait_for_exit(host, found.pid, timeout):
        _after_exit(host, daemon, found, record=record)
        return
    if not kill_after_timeout:
        raise GpurunError(
            f"{daemon.name} (pid {found.pid}) on host {host.name} is still running {timeout:.0f} s "
            f"after SIGTERM\n  next step: see {daemon.log_file} for what it waits on; run the "
            f"step again to wait longer, or allow SIGKILL with kill_after_timeout"
        )
    host.run(["kill", "-KILL", str(found.pid)])
    if not wait_for_exit(host, found.pid, 10):
        raise GpurunError(f"{daemon.name} (pid {found.pid}) on host {host.name} survived SIGKILL")
    _after_exit(host, daemon, found, killed=True, record=record)


def signal_reload(host: Host, daemon: Daemon) -> None:
    """Send SIGHUP to the running daemon, which makes dockerd reload daemon.json."""
    found = processes.pid_file(host, daemon.pid_file, daemon.name)
    if not found.running:
        raise GpurunError(
            f"{daemon.name} is not running on host {host.name} ({found.detail}), so it cannot "
            f"reload\n  next step: run the docker-service step to start it"
        )
    host.run(["kill", "-HUP", str(found.pid)])


def wait_for_containerd(host: Host, bin_dir: str, timeout: float = START_TIMEOUT_S) -> None:
    """Wait until containerd responds on its socket."""
    argv = [f"{bin_dir}/ctr", "--address", CONTAINERD_SOCKET, "version"]
    deadline = time.monotonic() + timeout
    while True:
        result = host.run(argv, check=False, timeout=30)
        if result.ok:
            return
        if time.monotonic() > deadline:
            raise RemoteCommandError(host.name, argv, result.exit_code, result.stdout,
                                     result.stderr + log_tail(host, CONTAINERD),
                                     f"containerd did not respond in time: see "
                                     f"{CONTAINERD.log_file} on the host")
        time.sleep(1)


def wait_for_dockerd(host: Host, timeout: float = START_TIMEOUT_S) -> str:
    """Wait until the Docker API responds; return the server version."""
    argv = ["docker", "version", "--format", "{{.Server.Version}}"]
    deadline = time.monotonic() + timeout
    while True:
        result = host.run(argv, check=False, timeout=30)
        if result.ok and result.stdout.strip():
            return result.stdout.strip()
        if time.monotonic() > deadline:
            raise RemoteCommandError(host.name, argv, result.exit_code, result.stdout,
                                     result.stderr + log_tail(host, DOCKERD),
                                     f"dockerd did not respond in time: see {DOCKERD.log_file} "
                                     f"on the host")
        time.sleep(1)


def running_bin_dir(host: Host) -> str | None:
    """Return the folder of the dockerd binary that the running managed dockerd was started from."""
    found = processes.pid_file(host, DOCKERD.pid_file, DOCKERD.name)
    if not found.running or "/" not in found.exe:
        return None
    return found.exe.rsplit("/", 1)[0] or "/"


def configured_dockerd_argv(
    host: Host, bin_dir: str | None = None, *, flags: list[str] | None = None
) -> list[str]:
    """Return the command line the next start of dockerd uses: gpurun's flags and the extra ones.

    `bin_dir` defaults to the folder of the running dockerd, else the login's bin_dir, else
    /usr/bin. `flags` defaults to the flags files' contents.
    """
    folder = bin_dir or running_bin_dir(host) or host.spec.path_prefix or "/usr/bin"
    extra = read_dockerd_flags(host) if flags is None else flags
    return DOCKERD.argv(folder.rstrip("/") or "/", extra)


def restart_dockerd(host: Host, *, kill_after_timeout: bool = False) -> str:
    """Stop dockerd gracefully and start it with its configured flags; return the API version."""
    bin_dir = running_bin_dir(host) or host.spec.path_prefix or "/usr/bin"
    argv = configured_dockerd_argv(host, bin_dir)
    before = processes.pid_file(host, DOCKERD.pid_file, DOCKERD.name)
    if not before.running:
        start(host, DOCKERD, argv, bin_dir)
        return wait_for_dockerd(host)

    # One journal entry for the pair, from which a rollback learns that this dockerd ran before
    # the run and restarts it on the restored files. A failed start still journals the stop.
    stop(host, DOCKERD, kill_after_timeout=kill_after_timeout, record=False)
    try:
        started = start(host, DOCKERD, argv, bin_dir, record=False)
    except GpurunError:
        _record(host, DOCKERD, "process-stopped", before, None)
        raise
    _record(host, DOCKERD, "process-restarted", before, started)
    return wait_for_dockerd(host)


def log_tail(host: Host, daemon: Daemon, lines: int = 20) -> str:
    result = host.run(["tail", "-n", str(lines), daemon.log_file], check=False)
    return f"\n--- last lines of {daemon.log_file} ---\n{result.stdout}" if result.ok else ""


def _wait_until_running(host: Host, daemon: Daemon) -> processes.PidFileFacts:
    started = time.monotonic()
    while True:
        found = processes.pid_file(host, daemon.pid_file, daemon.name)
        if found.running:
            return found
        # Until exec, the pid file names the start shell (sh), which reads as stale. A pid
        # file naming no process, or none at all and no such process after a few seconds,
        # means the daemon exited.
        waited = time.monotonic() - started
        exited = (found.stale and found.pid is not None and "no process" in found.detail) or (
            found.status == "absent" and waited > 5 and not processes.pids_of(host, daemon.name))
        if exited or waited > START_TIMEOUT_S:
            problem = "it exited" if exited else f"timed out after {START_TIMEOUT_S:.0f} s"
            raise GpurunError(
                f"{daemon.name} did not start on host {host.name}: {problem} "
                f"({found.detail}){log_tail(host, daemon)}\n  next step: fix what the log "
                f"shows, then run the step again"
            )
        time.sleep(0.5)


def wait_for_exit(host: Host, pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # kill -0 fails once the pid is gone; a zombie counts as gone.
        state = host.run(["sh", "-c", _STATE_SCRIPT, "sh", str(pid)], check=False)
        if not state.ok or state.stdout.strip() in ("", "Z"):
            return True
        time.sleep(0.5)
    return False


def _after_exit(host: Host, daemon: Daemon, found: processes.PidFileFacts,
                killed: bool = False, record: bool = True) -> None:
    # dockerd removes its own pid file on a clean exit; the start shell's file stays behind.
    _remove_pid_file(host, daemon)
    if record:
        _record(host, daemon, "process-killed" if killed else "process-stopped", found, None)


def _remove_pid_file(host: Host, daemon: Daemon) -> None:
    # Removed without a backup: a rollback must never bring back a pid file.
    host.run(["rm", "-f", "--", daemon.pid_file])


def _record(host: Host, daemon: Daemon, action: str, before: processes.PidFileFacts | None,
            after: processes.PidFileFacts | None) -> None:
    """Journal a start or stop, with the command lines, so the record shows what ran."""
    def describe(facts: processes.PidFileFacts | None) -> str | None:
        return f"pid {facts.pid}: {' '.join(facts.argv)}" if facts else None

    host.record_change(FileChange(
        path=f"process {daemon.name}", action=action, sha256_before=None, sha256_after=None,
        backup=None, version_before=describe(before), version_after=describe(after),
    ))
