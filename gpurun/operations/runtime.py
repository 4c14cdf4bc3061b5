"""Change where dockerd's runtimes are configured, apply it, and put the old files back on failure.

A change is checked before anything is written (`dockerd --validate` where dockerd has it,
and gpurun's own check of the same rules always), applied with a reload where dockerd can
reload it, and confirmed with `docker info`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from gpurun import daemon_config
from gpurun.errors import ConfigError
from gpurun.facts import docker as docker_facts
from gpurun.facts import dockerd as dockerd_facts
from gpurun.host import Host
from gpurun.operations import dockerd_control
from gpurun.operations.runtime_drop_in import DROP_IN_PATH

log = logging.getLogger("gpurun.operations.runtime")

# Seconds to wait for `docker info` to show a reloaded configuration.
RELOAD_SETTLE_S = 15
# Seconds to wait for the Docker API after a restart.
RESTART_SETTLE_S = 60


@dataclass(frozen=True)
class RuntimeTarget:
    """The runtime and default runtime that `docker info` must show after the change."""

    name: str
    path: str
    default: str


@dataclass
class RuntimeChange:
    """The files before and after a runtime change, and what dockerd must report after it."""

    config_path: str
    config_before: str | None
    config_after: str | None  # None: the file stays absent
    drop_in_before: str | None
    drop_in_after: str | None  # None: no gpurun drop-in
    command_line_after: daemon_config.CommandLine
    dockerd: str
    target: RuntimeTarget
    restart_reason: str = ""  # why a reload is not enough even for daemon.json alone
    # gpurun's file for the runtime flags: its drop-in, or the flags file without systemd.
    drop_in_path: str = DROP_IN_PATH

    @property
    def config_changes(self) -> bool:
        return self.config_after != self.config_before

    @property
    def drop_in_changes(self) -> bool:
        return self.drop_in_after != self.drop_in_before

    def describe(self, which: str) -> str:
        """Return the daemon.json and drop-in texts 'before' or 'after', for the record."""
        config = self.config_before if which == "before" else self.config_after
        drop_in = self.drop_in_before if which == "before" else self.drop_in_after
        return (f"{self.config_path}:\n{config or '(no file)'}\n"
                f"{self.drop_in_path}:\n{drop_in or '(no file)'}")


def runtime_state(info: dict[str, Any] | None) -> tuple[dict[str, str], str | None]:
    """Return the runtimes (name to path) and the default runtime that `docker info` reports."""
    if not info:
        return {}, None
    runtimes = {name: str((entry or {}).get("path", "")) if isinstance(entry, dict) else ""
                for name, entry in (info.get("Runtimes") or {}).items()}
    return runtimes, info.get("DefaultRuntime")


def shows_target(info: dict[str, Any] | None, target: RuntimeTarget) -> bool:
    runtimes, default = runtime_state(info)
    return runtimes.get(target.name) == target.path and default == target.default


def check_config_rules(
    host: Host, config: dict[str, Any], command_line: daemon_config.CommandLine,
    config_path: str = daemon_config.DAEMON_JSON,
) -> list[str]:
    """Return what dockerd would reject in this configuration, by the rules it checks at start.

    The rules: no option both as a flag and in daemon.json, `runc` not redefined, the default
    runtime defined, and every runtime's path an executable file.
    """
    problems = []
    for key in daemon_config.conflicts(config, command_line):
        problems.append(f"{key} is set both in {config_path} and on the dockerd command line "
                        f"({command_line.places(key)})")
    for name in daemon_config.BUILTIN_RUNTIMES & set(daemon_config.runtime_paths(config)):
        problems.append(f"runtime name {name!r} is reserved by dockerd but {config_path} "
                        f"defines it")
    undefined = daemon_config.undefined_default_runtime(config, command_line)
    if undefined:
        problems.append(f"default runtime {undefined!r} is not a defined runtime")
    runtimes = {**daemon_config.runtime_paths(config), **command_line.runtimes()}
    for name, path in runtimes.items():
        if not _is_executable(host, path):
            problems.append(f"runtime {name!r}: path {path!r} is not an executable file on "
                            f"host {host.name}")
    return problems


def _is_executable(host: Host, path: str) -> bool:
    """Return whether path (or, without a '/', the program of that name) is executable."""
    if not path:
        return False
    if "/" not in path:
        return host.which(path) is not None
    return host.succeeds(["test", "-f", path]) and host.succeeds(["test", "-x", path])


def validate_with_dockerd(host: Host, change: RuntimeChange) -> list[str]:
    """Run `dockerd --validate` on the new configuration where this dockerd has it.

    The candidate daemon.json goes into this run's folder on the host, so nothing dockerd
    reads changes. Returns dockerd's complaint, or [] when it accepts the configuration or
    cannot check it (dockerd before 23.0).
    NOTE: the tests run dockerd 20.10, which has no --validate, so this path has not been run.
    """
    if not dockerd_facts.supports_validate(host, change.dockerd):
        return []
    candidate = str(host.run_dir / "validate" / "daemon.json")
    host.run(["mkdir", "-p", str(host.run_dir / "validate")])
    host.run(["sh", "-c", 'cat > "$1"', "sh", candidate], stdin=change.config_after or "{}\n")
    argv = [change.dockerd, *_without_config_file(change.command_line_after.argv[1:]),
            f"--config-file={candidate}", "--validate"]
    result = host.run(argv, check=False, timeout=60)
    if result.ok:
        return []
    return [f"`dockerd --validate` rejects it: {(result.stderr or result.stdout).strip()}"]


def _without_config_file(words: list[str]) -> list[str]:
    kept: list[str] = []
    skip_next = False
    for word in words:
        if skip_next:
            skip_next = False
        elif word == "--config-file":
            skip_next = True
        elif not word.startswith("--config-file="):
            kept.append(word)
    return kept


def apply_runtime_change(host: Host, change: RuntimeChange) -> str:
    """Check, write, reload or restart, and confirm; put the old files back on failure.

    Returns how dockerd took the change: "reloaded" or "restarted".
    """
    config = daemon_config.parse_daemon_json(change.config_after, change.config_path, host.name)
    problems = check_config_rules(host, config, change.command_line_after, change.config_path)
    problems += validate_with_dockerd(host, change)
    if problems:
        raise ConfigError(
            f"the new dockerd configuration for host {host.name} would be rejected, so nothing "
            f"was written:\n  " + "\n  ".join(problems)
            + f"\n--- configuration tried ---\n{change.describe('after')}"
        )

    _write(host, change.config_path, change.config_after)
    _write(host, change.drop_in_path, change.drop_in_after)
    # The command line was read from the unit files on disk, so systemd must load them too.
    if change.drop_in_changes or dockerd_facts.needs_daemon_reload(host):
        dockerd_control.reload_units(host)
        _require_command_line(host, change)

    # dockerd reloads runtimes and default-runtime on SIGHUP, but flags change only at a start.
    info = None
    reload_is_enough = not change.drop_in_changes and not change.restart_reason
    if reload_is_enough and dockerd_control.is_dockerd_up(host):
        if dockerd_control.reload_dockerd(host):
            info = _settled_info(host, change.target, RELOAD_SETTLE_S)
        if shows_target(info, change.target):
            log.info("%s: dockerd reloaded its configuration", host.name)
            return "reloaded"
    started = dockerd_control.restart_dockerd(host)
    info = _settled_info(host, change.target, RESTART_SETTLE_S if started else 0)
    if shows_target(info, change.target):
        log.info("%s: dockerd restarted with the new configuration", host.name)
        return "restarted"
    _fail_and_restore(host, change, info)
    return "failed"  # not reached: _fail_and_restore raises


def _write(host: Host, path: str, text: str | None) -> None:
    if text is None:
        host.remove(path)
    else:
        host.write_text(path, text)


def _require_command_line(host: Host, change: RuntimeChange) -> None:
    """Confirm systemd now gives dockerd the planned runtime flags, before any restart."""
    found = dockerd_control.dockerd_command_line(host)
    planned = change.command_line_after
    same = (found.runtimes() == planned.runtimes()
            and found.value("default-runtime") == planned.value("default-runtime"))
    if same:
        return
    _restore_files(host, change)
    raise ConfigError(
        f"after daemon-reload, docker.service on host {host.name} starts `{' '.join(found.argv)}`"
        f", not the planned `{' '.join(planned.argv)}`: another drop-in sets ExecStart after "
        f"{change.drop_in_path}. The old files are back and dockerd was not restarted.\n"
        f"  next step: see `systemctl cat docker` and remove the other ExecStart=, then run again"
    )


def _settled_info(host: Host, target: RuntimeTarget, timeout: float) -> dict[str, Any] | None:
    """Poll `docker info` until it shows target or timeout seconds pass; return the last one."""
    deadline = time.monotonic() + timeout
    info = docker_facts.docker_info(host)
    while not shows_target(info, target) and time.monotonic() < deadline:
        time.sleep(1)
        info = docker_facts.docker_info(host)
    return info


def _restore_files(host: Host, change: RuntimeChange) -> None:
    _write(host, change.config_path, change.config_before)
    _write(host, change.drop_in_path, change.drop_in_before)
    if change.drop_in_changes:
        dockerd_control.reload_units(host)


def _fail_and_restore(host: Host, change: RuntimeChange, info: dict[str, Any] | None) -> None:
    """Put the old files back, restart dockerd with them, and raise with both configurations."""
    runtimes, default = runtime_state(info)
    shown = (f"docker info shows runtimes {sorted(runtimes)} and default {default!r}" if info
             else "the Docker API did not answer")
    log_tail = dockerd_control.dockerd_log_tail(host)
    _restore_files(host, change)
    dockerd_control.restart_dockerd(host)
    restored = ("dockerd runs again with the old configuration"
                if dockerd_control.wait_for_dockerd(host, RESTART_SETTLE_S)
                else "dockerd did not start with the old configuration either")
    raise ConfigError(
        f"dockerd on host {host.name} did not take the new configuration: {shown}, expected "
        f"runtime {change.target.name!r} at {change.target.path} and default "
        f"{change.target.default!r}. The old files are back and {restored}.\n"
        f"--- configuration tried ---\n{change.describe('after')}\n"
        f"--- configuration restored ---\n{change.describe('before')}\n"
        f"--- dockerd log before the restore ---\n{log_tail}\n"
        f"  next step: fix the cause shown in the log, then run the step again"
    )
