"""A Docker that gpurun did not install: the preflight findings and the docker-binaries actions."""

from __future__ import annotations

from gpurun.errors import PreflightError
from gpurun.facts.existing_docker import ExistingDocker
from gpurun.host import Host
from gpurun.operations import replace_docker
from gpurun.plan import Action, unchanged
from gpurun.steps.findings import Finding, blocking, ok, warning

CHECK = "existing Docker"


def findings(existing: ExistingDocker, replace_existing: bool) -> list[Finding]:
    """Return one finding per conflict (blocking unless replace_existing) and per leftover."""
    result = []
    for conflict in existing.conflicts():
        if replace_existing:
            result.append(warning(CHECK, conflict, "replace_existing is set: docker-binaries "
                                  "stops and disables it before installing, keeping backups"))
        else:
            result.append(blocking(CHECK, conflict, "remove it, or set replace_existing: true "
                                   "so that docker-binaries stops and disables it first"))
    for leftover in existing.leftovers():
        result.append(warning(CHECK, leftover, "remove what you no longer need"))
    return result or [ok(CHECK, "none besides gpurun's own")]


def actions(host: Host, existing: ExistingDocker, replace_existing: bool) -> list[Action]:
    """Return the actions that take the existing Docker out of the way, or raise without consent.

    Raises PreflightError, before anything is changed, when something would have to be
    stopped or overwritten and replace_existing is not set.
    """
    conflicts = existing.conflicts()
    if conflicts and not replace_existing:
        raise PreflightError(
            f"host {host.name} already has a Docker that gpurun did not install:\n  "
            + "\n  ".join(conflicts)
            + "\n  installing beside it could start a second daemon on the same data root, so "
              "nothing was changed\n  next step: remove it, or set replace_existing: true to "
              "let gpurun stop and disable it first"
        )
    if not conflicts:
        return [unchanged(CHECK, "; ".join(existing.leftovers()) or "none besides gpurun's own")]

    result = []
    if existing.foreign_units:
        units = existing.foreign_units
        result.append(Action(f"units {', '.join(units)}", "systemctl disable --now",
                             "Docker services gpurun did not write, replace_existing is set",
                             lambda: replace_docker.stop_and_disable_units(host, units)))
    for daemon in existing.daemons:
        result.append(Action(daemon.description, "SIGTERM, then wait for it to exit",
                             "a Docker daemon gpurun did not start, replace_existing is set",
                             lambda daemon=daemon: replace_docker.stop_daemon(host, daemon)))
    if existing.snap:
        result.append(Action(f"snap docker {existing.snap}", "snap stop --disable docker",
                             "the docker snap runs its own dockerd, replace_existing is set",
                             lambda: replace_docker.disable_snap(host)))
    result.append(Action("running daemons", "check that no other containerd or dockerd runs",
                         "a second daemon must never share the data root",
                         lambda: replace_docker.require_no_foreign_daemon(host)))
    return result
