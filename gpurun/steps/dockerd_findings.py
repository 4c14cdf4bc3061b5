"""Preflight findings about dockerd's configuration: daemon.json and its command line together."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpurun import daemon_config
from gpurun.errors import ConfigError
from gpurun.facts import dockerd as dockerd_facts
from gpurun.host import Host
from gpurun.operations import dockerd_control
from gpurun.operations.runtime_drop_in import DROP_IN_PATH
from gpurun.steps.findings import Finding, blocking, ok, warning

DEFAULT_DATA_ROOT = "/var/lib/docker"


@dataclass
class DockerdConfig:
    """dockerd's configuration as preflight read it, with the findings about it."""

    path: str
    config: dict[str, Any]
    command_line: daemon_config.CommandLine
    findings: list[Finding] = field(default_factory=list)

    @property
    def iptables_disabled(self) -> bool:
        return (self.config.get("iptables") is False
                or self.command_line.value("iptables") == "false")

    @property
    def data_root(self) -> str:
        return (self.command_line.value("data-root") or self.config.get("data-root")
                or self.config.get("graph") or DEFAULT_DATA_ROOT)


def read_dockerd_config(host: Host) -> DockerdConfig:
    """Read dockerd's command line and config file, and judge the two together."""
    try:
        command_line = dockerd_control.dockerd_command_line(host)
    except NotImplementedError as error:
        command_line = daemon_config.parse_dockerd_argv(["dockerd"])
        unread = warning("dockerd command line", str(error),
                         f"check by hand that {daemon_config.DAEMON_JSON} and dockerd's flags "
                         f"set no option twice")
        return DockerdConfig(daemon_config.DAEMON_JSON, {}, command_line, [unread])
    except ConfigError as error:
        command_line = daemon_config.parse_dockerd_argv(["dockerd"])
        unread = blocking("dockerd command line", str(error).splitlines()[0],
                          "fix the docker.service unit or drop-in named there")
        return DockerdConfig(daemon_config.DAEMON_JSON, {}, command_line, [unread])

    path = daemon_config.config_file_path(command_line)
    try:
        config = daemon_config.parse_daemon_json(host.read_text(path), path, host.name)
    except ConfigError as error:
        broken = blocking("daemon.json", str(error).splitlines()[0],
                          f"fix {path} by hand: dockerd does not start with it, and gpurun "
                          f"never rewrites a file it cannot parse")
        return DockerdConfig(path, {}, command_line, [broken])
    result = DockerdConfig(path, config, command_line)
    result.findings = config_findings(path, config, command_line)
    running = dockerd_facts.running_dockerd_argv(host)
    if running and running != command_line.argv:
        result.findings.append(warning(
            "running dockerd",
            f"dockerd runs as `{' '.join(running)}`, but its configuration now starts "
            f"`{' '.join(command_line.argv)}`",
            "the next restart of dockerd applies the difference; restart it now to see "
            "whether it starts"))
    return result


def config_findings(path: str, config: dict[str, Any],
                    command_line: daemon_config.CommandLine) -> list[Finding]:
    """Return the findings about one daemon.json and one dockerd command line."""
    findings = []
    for key in daemon_config.conflicts(config, command_line):
        findings.append(blocking(
            f"dockerd option {key}",
            f"{key} is set twice: in {path} and on the dockerd command line in "
            f"{command_line.places(key)}",
            "keep it in one of the two places: dockerd refuses to start with most options "
            "set twice, and gpurun never adds a second"))

    for name in daemon_config.BUILTIN_RUNTIMES & set(daemon_config.runtime_paths(config)):
        findings.append(blocking(
            "runtimes", f"{path} defines runtime {name!r}, a name dockerd reserves",
            f"remove runtimes.{name} from {path}: dockerd refuses to start with it"))

    undefined = daemon_config.undefined_default_runtime(config, command_line)
    if undefined:
        findings.append(blocking(
            "default runtime",
            f"default runtime {undefined!r} is not defined in {path} or by a flag, and dockerd "
            f"refuses to start with it",
            "where Docker and the toolkit are installed, run the runtime step alone "
            "(`gpurun run --steps runtime`), which defines it; else remove default-runtime "
            f"from {path} and let the runtime step set it"))

    flagged = [key for key in ("runtimes", "default-runtime") if key in command_line.options]
    foreign = [key for key in flagged if command_line.places(key) != DROP_IN_PATH]
    if foreign:
        places = ", ".join(dict.fromkeys(command_line.places(key) for key in foreign))
        findings.append(warning(
            "runtime flags", f"{' and '.join(foreign)} set by flags in {places}",
            "the runtime step sets runtimes only in daemon.json or its own drop-in and stops "
            "while other files set them: remove the --add-runtime and --default-runtime "
            "flags there"))

    if not findings:
        findings.append(ok("dockerd configuration",
                           f"{path}: {len(config)} key(s), no option set twice"))
    return findings
