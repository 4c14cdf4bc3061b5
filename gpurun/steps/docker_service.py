"""docker-service: the docker group, the three systemd units, enable and start.

On a host without systemd, containerd and dockerd run as managed background processes instead
(gpurun.steps.background_service).
"""

from __future__ import annotations

from gpurun.facts import system as system_facts
from gpurun.facts import systemd as systemd_facts
from gpurun.operations import service
from gpurun.plan import Action, Check, check, unchanged
from gpurun.step import Step
from gpurun.steps import background_service
from gpurun.steps.background_service import BackgroundFacts
from gpurun.steps.common import checked_bin_dir

ServiceFacts = dict[str, systemd_facts.UnitFacts] | BackgroundFacts


def gather(step: Step) -> ServiceFacts:
    """Read the init system, the docker group and the state of each unit or managed daemon."""
    host = step.host
    init = system_facts.init_system(host)
    if init != "systemd":
        return background_service.gather(step)
    units = {name: systemd_facts.unit(host, name) for name in service.UNITS}
    facts: dict[str, object] = {
        "init system": init,
        "docker group": "present" if service.has_group(host, service.DOCKER_GROUP) else "absent",
    }
    for name, unit in units.items():
        facts[name] = f"{unit.load_state}, {unit.file_state or '-'}, {unit.active_state}"
    step.show_facts(facts)
    return units


def plan(
    step: Step, bin_dir: str, units: ServiceFacts, *, kill_after_timeout: bool = False
) -> list[Action]:
    """Return the group, unit, reload, enable and start actions in the order they must run.

    Without systemd: the group, then stopping (SIGTERM and a wait; SIGKILL after the wait
    only with `kill_after_timeout`) and starting the background daemons.
    """
    host = step.host
    bin_dir = checked_bin_dir(bin_dir)
    if isinstance(units, BackgroundFacts):
        return background_service.plan(step, bin_dir, units,
                                       kill_after_timeout=kill_after_timeout)
    actions = []

    # docker.socket's SocketGroup=docker fails with status 216/GROUP if the group is missing.
    if service.has_group(host, service.DOCKER_GROUP):
        actions.append(unchanged("group docker", "exists"))
    else:
        actions.append(Action("group docker", "groupadd --system docker",
                              "docker.socket names it as SocketGroup",
                              lambda: service.create_system_group(host, service.DOCKER_GROUP)))

    changed_units = []
    for name in service.UNITS:
        path = f"{service.UNIT_DIR}/{name}"
        content = service.render_unit(name, bin_dir)
        if host.read_text(path) == content:
            actions.append(unchanged(path, "content as rendered"))
            continue
        changed_units.append(name)
        actions.append(Action(path, "write unit", "missing" if not units[name].exists else
                              "content differs from the template",
                              lambda path=path, content=content: host.write_text(path, content)))

    paths = [f"{service.UNIT_DIR}/{name}" for name in service.UNITS]
    if changed_units:
        actions.append(Action("systemd", "daemon-reload, systemd-analyze verify", "units changed",
                              lambda: service.reload_and_verify_units(host, paths)))

    for name in service.UNITS:
        if units[name].enabled:
            actions.append(unchanged(f"enable {name}", "enabled"))
        else:
            actions.append(Action(f"enable {name}", "systemctl enable", "not enabled",
                                  lambda name=name: service.enable(host, name)))

    for name in service.UNITS:
        restart = units[name].active and name in changed_units
        if units[name].active and not restart:
            actions.append(unchanged(f"start {name}", "active with the current unit"))
            continue
        reason = "unit changed while active" if restart else "not active"
        actions.append(Action(f"start {name}", "restart" if restart else "start", reason,
                              lambda name=name, restart=restart:
                              service.start_or_restart(host, name, restart)))

    if any(action.needed for action in actions):
        actions.append(Action("docker API", "wait until it answers", "the service was changed",
                              lambda: service.wait_for_api(host)))
    return actions


def verify(step: Step, bin_dir: str = "/usr/bin") -> list[Check]:
    """Check the units are enabled and active and the API answers on the socket."""
    host = step.host
    if system_facts.init_system(host) != "systemd":
        return background_service.verify(step, checked_bin_dir(bin_dir))
    checks = []
    for name in service.UNITS:
        unit = systemd_facts.unit(host, name)
        checks.append(check(f"{name} enabled", unit.enabled, unit.file_state))
        checks.append(check(f"{name} active", unit.active, unit.active_state))
    socket_group = host.run(["stat", "-c", "%G", "/run/docker.sock"], check=False).stdout.strip()
    checks.append(check("socket group", socket_group == "docker", f"/run/docker.sock {socket_group}"))
    result = host.run(["docker", "version", "--format", "{{.Server.Version}}"], check=False)
    checks.append(check("docker API answers", result.ok, result.stdout.strip() or result.stderr))
    return checks
