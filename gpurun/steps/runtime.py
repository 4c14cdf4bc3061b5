"""runtime: register the nvidia runtime in dockerd's configuration and make it the default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpurun import daemon_config
from gpurun.errors import ConfigError, GpurunError
from gpurun.facts import docker as docker_facts
from gpurun.facts import systemd as systemd_facts
from gpurun.operations import runtime
from gpurun.plan import Action, Check, check, unchanged
from gpurun.step import Step

RUNTIME_NAME = "nvidia"
RUNTIME_BINARY = "nvidia-container-runtime"
CONFIG_WAYS = ("daemon.json", "flags")


@dataclass
class RuntimeFacts:
    command_line: daemon_config.CommandLine
    config_path: str
    config_text: str | None
    config: dict[str, Any]
    runtime_path: str | None
    info: dict[str, Any] | None


def gather(step: Step) -> RuntimeFacts:
    """Read dockerd's effective command line, its config file, and what it reports now."""
    host = step.host
    commands = systemd_facts.exec_start(host, "docker.service")
    command_line = daemon_config.parse_dockerd_argv(commands[-1] if commands else ["dockerd"])
    config_path = daemon_config.config_file_path(command_line)
    config_text = host.read_text(config_path)
    config = daemon_config.parse_daemon_json(config_text, config_path, host.name)
    facts = RuntimeFacts(
        command_line=command_line,
        config_path=config_path,
        config_text=config_text,
        config=config,
        runtime_path=host.which(RUNTIME_BINARY),
        info=docker_facts.docker_info(host),
    )
    runtimes, default = runtime.runtime_state(facts.info)
    step.show_facts({
        "dockerd command line": " ".join(command_line.argv),
        "config file": config_path if config_text is not None else f"{config_path} (absent)",
        "config": config,
        RUNTIME_BINARY: facts.runtime_path or "not found",
        "runtimes reported": sorted(runtimes),
        "default runtime reported": default,
    })
    return facts


def plan(
    step: Step, facts: RuntimeFacts, *, set_default: bool = True, runtime_config: str = "daemon.json"
) -> list[Action]:
    """Return the daemon.json change, or none with the reason."""
    host = step.host
    if runtime_config not in CONFIG_WAYS:
        raise GpurunError(f"invalid runtime_config {runtime_config!r}: use one of {CONFIG_WAYS}")
    if runtime_config == "flags":
        raise NotImplementedError(
            "runtime_config 'flags' (a systemd drop-in with --add-runtime) is not supported yet; "
            "use 'daemon.json'"
        )
    if facts.runtime_path is None:
        raise GpurunError(
            f"{RUNTIME_BINARY} not found on host {host.name}\n"
            f"  next step: run the nvidia-toolkit step first"
        )

    flagged = [key for key in ("runtimes", "default-runtime") if key in facts.command_line.options]
    if flagged:
        raise ConfigError(
            f"dockerd on host {host.name} already sets {', '.join(flagged)} on its command line "
            f"({' '.join(facts.command_line.argv)}); writing them to {facts.config_path} too "
            f"would stop dockerd from starting\n  next step: remove those flags from the "
            f"docker.service drop-in, then run this step again"
        )

    wanted = daemon_config.with_nvidia_runtime(
        facts.config, facts.runtime_path, make_default=set_default, name=RUNTIME_NAME)
    problems = runtime.check_config_rules(host, wanted, facts.command_line)
    if problems:
        raise ConfigError(
            f"the configuration for host {host.name} would be rejected by dockerd:\n  "
            + "\n  ".join(problems) + f"\n  next step: fix {facts.config_path} or the unit"
        )

    target = facts.config_path
    if wanted == facts.config and runtime.shows_wanted(facts.info, RUNTIME_NAME, set_default):
        what = "registered and default" if set_default else "registered"
        return [unchanged(target, f"{RUNTIME_NAME} runtime {what}, and docker info shows it")]

    change = f"set runtimes.{RUNTIME_NAME}" + (" and default-runtime" if set_default else "")
    reason = "daemon.json differs" if wanted != facts.config else "dockerd has not loaded it"
    return [Action(target, change + ", reload dockerd", reason,
                   lambda: runtime.apply_daemon_json(host, target, facts.config_text, wanted,
                                                     RUNTIME_NAME, set_default))]


def verify(step: Step, *, set_default: bool = True) -> list[Check]:
    """Check that docker info lists the runtime, and the default if asked."""
    info = docker_facts.docker_info(step.host)
    runtimes, default = runtime.runtime_state(info)
    checks = [check(f"{RUNTIME_NAME} runtime listed", RUNTIME_NAME in runtimes,
                    f"runtimes {sorted(runtimes)}")]
    expected_default = RUNTIME_NAME if set_default else "runc"
    checks.append(check("default runtime", default == expected_default,
                        f"docker info shows {default!r}, expected {expected_default!r}"))
    return checks
