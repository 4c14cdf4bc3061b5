"""dockerd's configuration: daemon.json as a mapping, and the options on its command line.

dockerd refuses to start when one option is set both as a flag and in daemon.json, so
every change here starts from both sources.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gpurun.errors import ConfigError

DAEMON_JSON = "/etc/docker/daemon.json"

# Flags whose daemon.json key is not the flag name itself (dockerd 20.10 to 27).
FLAG_TO_KEY = {
    "add-runtime": "runtimes",
    "host": "hosts",
    "H": "hosts",
    "label": "labels",
    "dns": "dns",
    "dns-opt": "dns-opts",
    "dns-search": "dns-search",
    "exec-opt": "exec-opts",
    "log-opt": "log-opts",
    "storage-opt": "storage-opts",
    "registry-mirror": "registry-mirrors",
    "insecure-registry": "insecure-registries",
    "default-ulimit": "default-ulimits",
    "authorization-plugin": "authorization-plugins",
    "cluster-store-opt": "cluster-store-opts",
    "node-generic-resource": "node-generic-resources",
    "allow-nondistributable-artifacts": "allow-nondistributable-artifacts",
    "default-address-pool": "default-address-pools",
    "feature": "features",
    "cdi-spec-dir": "cdi-spec-dirs",
}

# Flags that only steer the command line and have no daemon.json key.
COMMAND_LINE_ONLY = {"config-file", "validate", "version", "v", "help", "D", "debug", "l"}


def parse_daemon_json(text: str | None, path: str = DAEMON_JSON, host: str = "") -> dict[str, Any]:
    """Parse daemon.json; a missing or empty file is an empty mapping.

    Raises ConfigError with the file, line and column when the text is not one JSON object.
    """
    if text is None or not text.strip():
        return {}
    where = f" on host {host}" if host else ""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"invalid JSON in {path}{where}, line {error.lineno} column {error.colno}: "
            f"{error.msg}\n  next step: fix the file by hand (dockerd would not start with it "
            f"either), then run the step again; gpurun left it unchanged"
        ) from error
    if not isinstance(value, dict):
        raise ConfigError(
            f"{path}{where} holds a JSON {type(value).__name__}, not an object\n"
            f"  next step: make it one JSON object, e.g. {{}}, then run the step again"
        )
    return value


def render_daemon_json(config: dict[str, Any]) -> str:
    """Return daemon.json text with a stable indentation, keeping the keys' order."""
    return json.dumps(config, indent=4) + "\n"


def with_nvidia_runtime(
    config: dict[str, Any], runtime_path: str, *, make_default: bool, name: str = "nvidia"
) -> dict[str, Any]:
    """Return a copy of config with the runtime registered (and default, if asked).

    Every other key is kept as it was, including unknown ones and other runtimes.
    """
    wanted = copy.deepcopy(config)
    runtimes = wanted.setdefault("runtimes", {})
    entry = dict(runtimes.get(name) or {})
    entry["path"] = runtime_path
    runtimes[name] = entry
    if make_default:
        wanted["default-runtime"] = name
    elif wanted.get("default-runtime") == name:
        del wanted["default-runtime"]
    return wanted


@dataclass
class CommandLine:
    """The options given to dockerd on its command line, as daemon.json keys."""

    argv: list[str]
    options: dict[str, list[str]] = field(default_factory=dict)

    def value(self, key: str) -> str | None:
        values = self.options.get(key)
        return values[-1] if values else None

    def runtimes(self) -> dict[str, str]:
        """Return the runtimes added with --add-runtime NAME=PATH."""
        added = {}
        for item in self.options.get("runtimes", []):
            name, _, path = item.partition("=")
            added[name] = path
        return added


def parse_dockerd_argv(argv: Sequence[str]) -> CommandLine:
    """Parse dockerd's argv into daemon.json keys with the values given on the command line."""
    options: dict[str, list[str]] = {}
    items = list(argv[1:])
    index = 0
    while index < len(items):
        item = items[index]
        index += 1
        if not item.startswith("-") or item in ("-", "--"):
            continue
        flag, has_value, value = item.lstrip("-").partition("=")
        if not has_value and index < len(items) and not items[index].startswith("-"):
            if flag not in ("D", "debug", "validate", "version", "help", "l"):
                value = items[index]
                index += 1
        options.setdefault(FLAG_TO_KEY.get(flag, flag), []).append(value)
    return CommandLine(list(argv), options)


def conflicts(config: dict[str, Any], command_line: CommandLine) -> list[str]:
    """Return the daemon.json keys also set on the command line (dockerd rejects each)."""
    keys = [key for key in command_line.options if key not in COMMAND_LINE_ONLY]
    return sorted(key for key in keys if key in config)


def config_file_path(command_line: CommandLine) -> str:
    """Return the daemon.json path dockerd reads: --config-file, else the default."""
    return command_line.value("config-file") or DAEMON_JSON
