"""docker-service on a host without systemd: containerd and dockerd as managed background processes.

NOTE: nothing starts the daemons again after a reboot, because the host has no init system
that gpurun could configure. The container's or image's entry point must run the
docker-service runbook (or the same start) again.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpurun.errors import PreflightError
from gpurun.facts import processes
from gpurun.host import Host
from gpurun.operations import background, service
from gpurun.plan import Action, Check, check, skipped, unchanged
from gpurun.step import Step


@dataclass(frozen=True)
class BackgroundFacts:
    """The docker group, the managed daemons' pid files, and dockerd's extra flags."""

    has_group: bool
    daemons: dict[str, processes.PidFileFacts]
    dockerd_flags: list[str]


def gather(step: Step) -> BackgroundFacts:
    """Read the docker group, each daemon's pid file (checked against /proc) and the flags."""
    host = step.host
    daemons = {d.name: processes.pid_file(host, d.pid_file, d.name) for d in background.DAEMONS}
    found = BackgroundFacts(
        has_group=service.has_group(host, service.DOCKER_GROUP),
        daemons=daemons,
        dockerd_flags=background.read_dockerd_flags(host),
    )
    facts: dict[str, object] = {
        "init system": "none: containerd and dockerd run as managed background processes",
        "docker group": "present" if found.has_group else "absent",
        f"extra dockerd flags ({background.DOCKERD_FLAGS_FILE})": found.dockerd_flags or "none",
    }
    for daemon in background.DAEMONS:
        state = daemons[daemon.name]
        facts[daemon.pid_file] = f"{state.status}: {state.detail}"
        facts[f"{daemon.name} log"] = daemon.log_file
    step.show_facts(facts)
    return found


def plan(
    step: Step, bin_dir: str, facts: BackgroundFacts, *, kill_after_timeout: bool = False
) -> list[Action]:
    """Return the group, stop, start and wait actions, in the order they must run."""
    host = step.host
    _reject_unmanaged_daemons(host, facts)
    actions = []

    if facts.has_group:
        actions.append(unchanged("group docker", "exists"))
    else:
        actions.append(Action("group docker", "groupadd --system docker",
                              "dockerd gives its socket to this group",
                              lambda: service.create_system_group(host, service.DOCKER_GROUP)))

    wanted = {
        background.CONTAINERD.name: background.CONTAINERD.argv(bin_dir, []),
        background.DOCKERD.name: background.DOCKERD.argv(bin_dir, facts.dockerd_flags),
    }
    restarts = {}
    for daemon in background.DAEMONS:
        reason = restart_reason(facts.daemons[daemon.name], wanted[daemon.name])
        if reason:
            restarts[daemon.name] = reason

    # dockerd stops before containerd, which it uses, and starts after it.
    for daemon in reversed(background.DAEMONS):
        if daemon.name in restarts:
            actions.append(Action(
                f"stop {daemon.name}", "SIGTERM, then wait for it to exit", restarts[daemon.name],
                lambda daemon=daemon: background.stop(host, daemon,
                                                      kill_after_timeout=kill_after_timeout)))

    for daemon in background.DAEMONS:
        state = facts.daemons[daemon.name]
        if state.running and daemon.name not in restarts:
            actions.append(unchanged(f"start {daemon.name}",
                                     f"running ({state.detail}) with the expected command line"))
            continue
        reason = restarts.get(daemon.name) or (
            f"pid file is stale: {state.detail}" if state.stale else "not running")
        actions.append(Action(
            f"start {daemon.name}", f"start in the background: {' '.join(wanted[daemon.name])}",
            reason, lambda daemon=daemon: _start_and_wait(host, daemon, wanted[daemon.name],
                                                          bin_dir)))

    if any(action.needed for action in actions):
        actions.append(Action("docker API", "wait until it answers", "the daemons were changed",
                              lambda: background.wait_for_dockerd(host)))
    return actions


def restart_reason(state: processes.PidFileFacts, wanted: list[str]) -> str | None:
    """Return why a running daemon must be restarted to match `wanted`, or None."""
    if not state.running:
        return None
    if state.exe != wanted[0]:
        return f"runs {state.exe}, not {wanted[0]}"
    if state.exe_replaced:
        return f"{state.exe} was replaced after the daemon started"
    if state.argv != wanted:
        return f"started as `{' '.join(state.argv)}`, expected `{' '.join(wanted)}`"
    return None


def verify(step: Step, bin_dir: str) -> list[Check]:
    """Check both daemons run from bin_dir, the socket's group is docker, and the API responds."""
    host = step.host
    checks = []
    for daemon in background.DAEMONS:
        state = processes.pid_file(host, daemon.pid_file, daemon.name)
        expected = f"{bin_dir}/{daemon.name}"
        checks.append(check(f"{daemon.name} running", state.running, state.detail))
        checks.append(check(f"{daemon.name} binary", state.exe == expected and
                            not state.exe_replaced, f"{state.exe or '-'}, expected {expected}"))
    socket_group = host.run(["stat", "-c", "%G", "/run/docker.sock"], check=False).stdout.strip()
    checks.append(check("socket group", socket_group == "docker", f"/run/docker.sock {socket_group}"))
    result = host.run(["docker", "version", "--format", "{{.Server.Version}}"], check=False)
    checks.append(check("docker API answers", result.ok, result.stdout.strip() or result.stderr))
    checks.append(skipped("start at boot", "the host has no init system; its entry point must "
                                           "run the docker-service step again after a restart"))
    return checks


def _start_and_wait(host: Host, daemon: background.Daemon, argv: list[str], bin_dir: str) -> None:
    background.start(host, daemon, argv, bin_dir)
    if daemon is background.CONTAINERD:
        background.wait_for_containerd(host, bin_dir)


def _reject_unmanaged_daemons(host: Host, facts: BackgroundFacts) -> None:
    """Raise when a containerd or dockerd runs that gpurun's pid files do not name.

    Starting gpurun's daemons beside it would put two daemons on the same socket and data root.
    """
    for daemon in background.DAEMONS:
        managed = facts.daemons[daemon.name].pid if facts.daemons[daemon.name].running else None
        others = [pid for pid in processes.pids_of(host, daemon.name) if pid != managed]
        if others:
            raise PreflightError(
                f"host {host.name} runs {daemon.name} (pid {', '.join(map(str, others))}) that "
                f"gpurun did not start; a second {daemon.name} would share its socket and data\n"
                f"  next step: run the docker-binaries step with replace_existing: true, which "
                f"stops it, or stop it by hand; nothing was changed"
            )
