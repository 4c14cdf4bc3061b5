"""runtime: register the nvidia runtime with dockerd and make it the default, in one place.

The runtimes and the default runtime live either in daemon.json (the default way) or in
gpurun's systemd drop-in as `--add-runtime` and `--default-runtime` flags (without systemd:
gpurun's runtime flags file, which every background start of dockerd reads). Switching ways
moves every runtime to the new place and empties the old one, so dockerd never finds an
option in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpurun import daemon_config
from gpurun.errors import ConfigError, GpurunError
from gpurun.facts import docker as docker_facts
from gpurun.facts import dockerd as dockerd_facts
from gpurun.facts import system as system_facts
from gpurun.host import Host
from gpurun.operations import background, runtime
from gpurun.operations import runtime_drop_in as drop_in
from gpurun.plan import Action, Check, check, unchanged
from gpurun.step import Step
from gpurun.steps.common import planned_after_earlier_steps

RUNTIME_NAME = "nvidia"
RUNTIME_BINARY = "nvidia-container-runtime"
# dockerd (19.03 and later) offers `--gpus` only if it found this program when it started.
GPU_HOOK_BINARY = "nvidia-container-runtime-hook"
DAEMON_JSON_WAY, FLAGS_WAY = "daemon.json", "flags"
CONFIG_WAYS = (DAEMON_JSON_WAY, FLAGS_WAY)
DEFAULT_RUNTIME = daemon_config.DEFAULT_RUNTIME


@dataclass
class RuntimeFacts:
    init_system: str
    service: dockerd_facts.ServiceCommandLine  # the unit with every drop-in
    base: dockerd_facts.ServiceCommandLine  # the unit without gpurun's drop-in
    config_path: str
    config_text: str | None
    config: dict[str, Any]
    drop_in_text: str | None
    runtime_path: str | None
    dockerd: str | None
    info: dict[str, Any] | None
    restart_reason: str = ""  # why dockerd needs a restart whatever the files say
    # gpurun's own file for the runtime flags: the drop-in, or the flags file without systemd.
    drop_in_path: str = drop_in.DROP_IN_PATH


def rootless_refusal(host: str, user: str) -> str:
    """Return why gpurun rejects a rootless install, and what to do instead."""
    return (
        f"rootless Docker (rootless_user={user!r}) is not supported on host {host}: it needs "
        f"the docker-rootless-extras tarball, a per-user service and daemon.json for {user}, "
        f"and `no-cgroups = true` in /etc/nvidia-container-runtime/config.toml, which turns "
        f"off cgroup device control for every NVIDIA container on the host. gpurun installs "
        f"none of that, so it changes nothing rather than leave a half install.\n"
        f"  next step: leave rootless_user empty for a rootful install"
    )


def gather(step: Step) -> RuntimeFacts:
    """Read dockerd's unit and drop-ins, its config file, and what `docker info` reports."""
    host = step.host
    init = system_facts.init_system(host)
    if init == "systemd":
        service = dockerd_facts.service_command_line(host)
        base = dockerd_facts.service_command_line(host, leave_out=(drop_in.DROP_IN_PATH,))
        drop_in_path = drop_in.DROP_IN_PATH
    else:
        service = background.service_command_line(host)
        base = background.service_command_line(host, with_runtime_flags=False)
        drop_in_path = background.DOCKERD_RUNTIME_FLAGS_FILE
    config_path = daemon_config.config_file_path(service.command_line)
    config_text = host.read_text(config_path)
    config = daemon_config.parse_daemon_json(config_text, config_path, host.name)
    dockerd = service.command_line.argv[0]
    facts = RuntimeFacts(
        init_system=init,
        service=service,
        base=base,
        config_path=config_path,
        config_text=config_text,
        config=config,
        drop_in_text=host.read_text(drop_in_path),
        runtime_path=host.which(RUNTIME_BINARY),
        dockerd=dockerd if "/" in dockerd else host.which(dockerd),
        info=docker_facts.docker_info(host),
        drop_in_path=drop_in_path,
    )
    hook = host.which(GPU_HOOK_BINARY)
    if facts.info is not None and hook and dockerd_facts.started_before_change(host, hook):
        facts.restart_reason = (f"dockerd started before {hook} was installed, and it looks "
                                f"for that program only at start to offer `--gpus`")
    runtimes, default = runtime.runtime_state(facts.info)
    step.show_facts({
        "unit files": service.files or "none",
        "dockerd command line": " ".join(service.command_line.argv),
        "ExecStart from": service.exec_start_file or "none",
        "config file": config_path if config_text is not None else f"{config_path} (absent)",
        "config": config,
        "gpurun drop-in": drop_in_path if facts.drop_in_text is not None else "absent",
        RUNTIME_BINARY: facts.runtime_path or "not found",
        "runtimes reported": runtimes,
        "default runtime reported": default,
        "restart needed": facts.restart_reason or "no",
    })
    return facts


def plan(
    step: Step,
    facts: RuntimeFacts,
    *,
    set_default: bool = True,
    runtime_config: str = DAEMON_JSON_WAY,
    rootless_user: str = "",
) -> list[Action]:
    """Return the change that puts the runtimes in the chosen place, or none with the reason."""
    host = step.host
    if runtime_config not in CONFIG_WAYS:
        raise GpurunError(f"invalid runtime_config {runtime_config!r}: use one of "
                          f"{', '.join(CONFIG_WAYS)}")
    if rootless_user:
        raise GpurunError(rootless_refusal(host.name, rootless_user))
    missing = [name for name, path in ((RUNTIME_BINARY, facts.runtime_path),
                                       ("dockerd", facts.dockerd)) if path is None]
    if missing and step.plan_only:
        where = facts.config_path if runtime_config == DAEMON_JSON_WAY else facts.drop_in_path
        default = " and make it the default" if set_default else ""
        return [planned_after_earlier_steps(
            where, f"register the {RUNTIME_NAME} runtime through {runtime_config}{default}",
            missing)]
    if facts.runtime_path is None:
        raise GpurunError(f"{RUNTIME_BINARY} not found on host {host.name}\n"
                          f"  next step: run the nvidia-toolkit step first")
    if facts.dockerd is None:
        raise GpurunError(f"dockerd not found on host {host.name}\n"
                          f"  next step: run the docker-binaries and docker-service steps first")
    _reject_foreign_runtime_flags(host, facts)

    if runtime_config == FLAGS_WAY:
        change = _flags_change(host.name, facts, set_default)
    else:
        change = _daemon_json_change(facts, set_default)
    problems = runtime.check_config_rules(
        host, daemon_config.parse_daemon_json(change.config_after), change.command_line_after,
        facts.config_path)
    if problems:
        raise ConfigError(
            f"the configuration planned for host {host.name} would be rejected by dockerd, so "
            f"nothing was changed:\n  " + "\n  ".join(problems)
            + f"\n  next step: fix {facts.config_path} or the docker.service unit by hand"
        )

    target = change.target
    where = facts.config_path if runtime_config == DAEMON_JSON_WAY else facts.drop_in_path
    change.restart_reason = facts.restart_reason
    files_as_asked = not change.config_changes and not change.drop_in_changes
    if files_as_asked and not change.restart_reason and runtime.shows_target(facts.info, target):
        return [unchanged(where, f"{target.name} runtime at {target.path}, default "
                                 f"{target.default}, and docker info shows it")]
    return [Action(where, _describe(change, runtime_config), _reason(facts, change),
                   lambda: runtime.apply_runtime_change(host, change))]


def _reject_foreign_runtime_flags(host: Host, facts: RuntimeFacts) -> None:
    """Refuse runtime flags that a file other than gpurun's drop-in puts on the command line.

    gpurun keeps the runtimes in one place it manages and never edits an operator's files.
    """
    base = facts.base.command_line
    flagged = [key for key in ("runtimes", "default-runtime") if key in base.options]
    if not flagged:
        return
    places = ", ".join(dict.fromkeys(base.places(key) for key in flagged))
    raise ConfigError(
        f"dockerd's command line on host {host.name} already sets "
        f"{' and '.join(flagged)} through {places} (`{' '.join(base.argv)}`). gpurun sets the "
        f"runtimes in one place only, {facts.config_path} or its own drop-in, and does not "
        f"edit files it did not write, so nothing was changed.\n"
        f"  next step: remove --add-runtime and --default-runtime from {places}, run "
        f"`systemctl daemon-reload`, then run this step again"
    )


def _daemon_json_change(facts: RuntimeFacts, set_default: bool) -> runtime.RuntimeChange:
    """Return the change that puts every runtime into daemon.json and drops gpurun's drop-in."""
    # Runtimes that an earlier flags-way run moved into the drop-in come back to daemon.json.
    moved = daemon_config.parse_dockerd_argv(_runtime_file_argv(facts))
    wanted = dict(facts.config)
    if moved.runtimes():
        runtimes = dict(wanted.get("runtimes") or {})
        for name, path in moved.runtimes().items():
            runtimes.setdefault(name, {"path": path})
        wanted["runtimes"] = runtimes
    moved_default = moved.value("default-runtime")
    if moved_default and moved_default != RUNTIME_NAME and "default-runtime" not in wanted:
        wanted["default-runtime"] = moved_default
    wanted = daemon_config.with_nvidia_runtime(
        wanted, facts.runtime_path or "", make_default=set_default, name=RUNTIME_NAME)

    default = wanted.get("default-runtime") or DEFAULT_RUNTIME
    return runtime.RuntimeChange(
        config_path=facts.config_path,
        config_before=facts.config_text,
        config_after=_config_text(facts, wanted),
        drop_in_before=facts.drop_in_text,
        drop_in_after=None,
        command_line_after=facts.base.command_line,
        dockerd=facts.dockerd or "dockerd",
        target=runtime.RuntimeTarget(RUNTIME_NAME, facts.runtime_path or "", default),
        drop_in_path=facts.drop_in_path,
    )


def _runtime_file_argv(facts: RuntimeFacts) -> list[str]:
    """Return the dockerd words in gpurun's runtime flags file, the drop-in or the flags file."""
    if facts.init_system == "systemd":
        return drop_in.drop_in_argv(facts.drop_in_text)
    return ["dockerd", *background.parse_flags(facts.drop_in_text)]


def _flags_change(host_name: str, facts: RuntimeFacts, set_default: bool,
                  ) -> runtime.RuntimeChange:
    """Return the change that puts every runtime into gpurun's drop-in as dockerd flags."""
    # Runtimes already in gpurun's drop-in stay, then those that move out of daemon.json.
    current = daemon_config.parse_dockerd_argv(drop_in.drop_in_argv(facts.drop_in_text))
    runtimes = current.runtimes()
    for name, entry in (facts.config.get("runtimes") or {}).items():
        if not isinstance(entry, dict) or set(entry) != {"path"}:
            raise ConfigError(
                f"runtime {name!r} in {facts.config_path} on host {host_name} has settings "
                f"besides its path ({entry!r}), which --add-runtime cannot carry, so nothing "
                f"was changed\n  next step: keep runtime_config = \"daemon.json\" on this host"
            )
        if name != RUNTIME_NAME:
            runtimes[name] = str(entry["path"])
    runtimes[RUNTIME_NAME] = facts.runtime_path or ""
    kept_default = facts.config.get("default-runtime") or current.value("default-runtime")
    default = RUNTIME_NAME if set_default else (
        kept_default if kept_default and kept_default != RUNTIME_NAME else None)

    flags = drop_in.runtime_flags(runtimes, default)
    raw_argv = drop_in.without_runtime_flags(facts.base.raw_argv or [facts.dockerd or "dockerd"])
    expanded = facts.base.command_line.argv
    command_line_after = daemon_config.parse_dockerd_argv(
        expanded + flags, [facts.drop_in_path] * (len(expanded) + len(flags)))
    if facts.init_system == "systemd":
        drop_in_after = drop_in.render_drop_in(raw_argv + flags)
    else:
        drop_in_after = background.render_runtime_flags(flags)
    return runtime.RuntimeChange(
        config_path=facts.config_path,
        config_before=facts.config_text,
        config_after=_config_text(facts, daemon_config.without_runtime_keys(facts.config)),
        drop_in_before=facts.drop_in_text,
        drop_in_after=drop_in_after,
        command_line_after=command_line_after,
        dockerd=facts.dockerd or "dockerd",
        target=runtime.RuntimeTarget(RUNTIME_NAME, facts.runtime_path or "",
                                     default or DEFAULT_RUNTIME),
        drop_in_path=facts.drop_in_path,
    )


def _config_text(facts: RuntimeFacts, wanted: dict[str, Any]) -> str | None:
    """Return daemon.json's new text: the old text when nothing changes, else rendered."""
    if wanted == facts.config:
        return facts.config_text
    return daemon_config.render_daemon_json(wanted)


def _describe(change: runtime.RuntimeChange, runtime_config: str) -> str:
    """Return the planned change in one line: the runtime, the files, and how dockerd takes it."""
    parts = [f"{RUNTIME_NAME} runtime, default {change.target.default}, through {runtime_config}"]
    if change.config_changes:
        parts.append(f"merge into {change.config_path}")
    if change.drop_in_changes:
        verb = "remove" if change.drop_in_after is None else "write"
        parts.append(f"{verb} {change.drop_in_path}")
    restart = change.drop_in_changes or change.restart_reason
    parts.append("restart dockerd" if restart else "reload dockerd")
    return "; ".join(parts)


def _reason(facts: RuntimeFacts, change: runtime.RuntimeChange) -> str:
    if change.config_changes or change.drop_in_changes:
        reasons = ["the runtimes are not configured as asked", change.restart_reason]
        return "; ".join(reason for reason in reasons if reason)
    if change.restart_reason:
        return change.restart_reason
    runtimes, default = runtime.runtime_state(facts.info)
    if facts.info is None:
        return "the files are as asked but the Docker API does not answer"
    return f"the files are as asked but docker info shows {sorted(runtimes)}, default {default}"


def verify(step: Step, *, set_default: bool = True) -> list[Check]:
    """Check docker info against the configuration, and that the runtimes are in one place."""
    host = step.host
    if system_facts.init_system(host) == "systemd":
        service = dockerd_facts.service_command_line(host)
    else:
        service = background.service_command_line(host)
    command_line = service.command_line
    config_path = daemon_config.config_file_path(command_line)
    config = daemon_config.parse_daemon_json(host.read_text(config_path), config_path, host.name)

    info = docker_facts.docker_info(host)
    runtimes, default = runtime.runtime_state(info)
    checks = [check(f"{RUNTIME_NAME} runtime listed", RUNTIME_NAME in runtimes,
                    f"docker info runtimes: {runtimes}")]
    configured = config.get("default-runtime") or command_line.value("default-runtime")
    expected_default = RUNTIME_NAME if set_default else (
        configured if configured and configured != RUNTIME_NAME else DEFAULT_RUNTIME)
    checks.append(check("default runtime", default == expected_default,
                        f"docker info shows {default!r}, expected {expected_default!r}"))

    in_file = [key for key in ("runtimes", "default-runtime") if key in config]
    on_flags = [key for key in ("runtimes", "default-runtime") if key in command_line.options]
    flag_place = service.exec_start_file or ", ".join(service.files) or "unit"
    places = ([config_path] if in_file else []) + ([flag_place] if on_flags else [])
    checks.append(check("runtimes configured in one place", len(places) <= 1,
                        f"set in {', '.join(places) or 'no file'}"))
    return checks
