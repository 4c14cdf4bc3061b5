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
COMMAND_LINE = "the dockerd command line"

# The runtime dockerd always defines, which daemon.json may not redefine (dockerd 20.10 to 27).
DEFAULT_RUNTIME = "runc"
BUILTIN_RUNTIMES = frozenset({DEFAULT_RUNTIME})

# Flags whose daemon.json key is not the flag name itself (dockerd 20.10 to 27).
FLAG_TO_KEY = {
    "add-runtime": "runtimes",
    "host": "hosts",
    "label": "labels",
    "dns-opt": "dns-opts",
    "exec-opt": "exec-opts",
    "log-opt": "log-opts",
    "storage-opt": "storage-opts",
    "registry-mirror": "registry-mirrors",
    "insecure-registry": "insecure-registries",
    "default-ulimit": "default-ulimits",
    "authorization-plugin": "authorization-plugins",
    "cluster-store-opt": "cluster-store-opts",
    "node-generic-resource": "node-generic-resources",
    "default-address-pool": "default-address-pools",
    "feature": "features",
    "cdi-spec-dir": "cdi-spec-dirs",
    "graph": "data-root",
}

# One-letter flags of dockerd 20.10 to 27 (`dockerd --help`), by their long name.
SHORT_FLAGS = {
    "b": "bridge", "D": "debug", "G": "group", "H": "host", "l": "log-level",
    "p": "pidfile", "s": "storage-driver", "v": "version", "g": "graph",
}

# Boolean flags take no separate value word: `--iptables=false`, never `--iptables false`.
BOOLEAN_FLAGS = frozenset({
    "debug", "experimental", "help", "icc", "init", "ip-forward", "ip-forward-no-drop",
    "ip-masq", "ip6tables", "iptables", "ipv6", "live-restore", "no-new-privileges",
    "raw-logs", "rootless", "selinux-enabled", "tls", "tlsverify", "userland-proxy",
    "validate", "version", "cri-containerd", "allow-direct-routing",
})

# Flags that only steer the command line and have no daemon.json key.
COMMAND_LINE_ONLY = frozenset({"config-file", "validate", "version", "help"})


def parse_daemon_json(text: str | None, path: str = DAEMON_JSON, host: str = "") -> dict[str, Any]:
    """Parse daemon.json; a missing or empty file is an empty mapping.

    Raises ConfigError with the file, line and column when the text is not one JSON object,
    and when a key appears twice in one object (JSON parsers differ on which one wins).
    """
    if text is None or not text.strip():
        return {}
    where = f" on host {host}" if host else ""
    unchanged = "gpurun left it unchanged"
    try:
        value = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"invalid JSON in {path}{where}, line {error.lineno} column {error.colno}: "
            f"{error.msg}\n  next step: fix the file by hand (dockerd would not start with it "
            f"either), then run the step again; {unchanged}"
        ) from error
    except _DuplicateKey as error:
        line = text.count("\n", 0, text.rfind(f'"{error.key}"')) + 1
        raise ConfigError(
            f"invalid daemon.json {path}{where}: key {error.key!r} appears twice in one object "
            f"(the last one is near line {line})\n  next step: keep one of the two by hand, "
            f"then run the step again; {unchanged}"
        ) from error
    if not isinstance(value, dict):
        raise ConfigError(
            f"{path}{where} contains a JSON {type(value).__name__}, not an object\n"
            f"  next step: make it one JSON object, e.g. {{}}, then run the step again; "
            f"{unchanged}"
        )
    return value


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise _DuplicateKey(key)
        mapping[key] = value
    return mapping


def render_daemon_json(config: dict[str, Any]) -> str:
    """Return daemon.json text with a stable indentation, keeping the keys' order."""
    return json.dumps(config, indent=4) + "\n"


def with_nvidia_runtime(
    config: dict[str, Any], runtime_path: str, *, make_default: bool, name: str = "nvidia"
) -> dict[str, Any]:
    """Return a copy of config with the runtime registered (and default, if asked).

    Every other key is kept as it was, including unknown ones and other runtimes. Without
    make_default, a default that names this runtime becomes runc.
    """
    wanted = copy.deepcopy(config)
    runtimes = wanted.setdefault("runtimes", {})
    entry = dict(runtimes.get(name) or {})
    entry["path"] = runtime_path
    runtimes[name] = entry
    if make_default:
        wanted["default-runtime"] = name
    elif wanted.get("default-runtime") == name:
        # dockerd's reload (SIGHUP) keeps the old default when the key is only removed.
        wanted["default-runtime"] = DEFAULT_RUNTIME
    return wanted


def without_runtime_keys(config: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of config without `runtimes` and `default-runtime`, for the flags way."""
    wanted = copy.deepcopy(config)
    wanted.pop("runtimes", None)
    wanted.pop("default-runtime", None)
    return wanted


def runtime_paths(config: dict[str, Any]) -> dict[str, str]:
    """Return each daemon.json runtime's path ('' where an entry has none)."""
    runtimes = config.get("runtimes") or {}
    return {name: str((entry or {}).get("path", "")) if isinstance(entry, dict) else ""
            for name, entry in runtimes.items()}


@dataclass
class CommandLine:
    """dockerd's argv, its options as daemon.json keys, and the file that set each option."""

    argv: list[str]
    options: dict[str, list[str]] = field(default_factory=dict)
    origins: dict[str, list[str]] = field(default_factory=dict)

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

    def places(self, key: str) -> str:
        """Return where key was set on the command line: unit files, or the command line."""
        return ", ".join(dict.fromkeys(self.origins.get(key, []))) or COMMAND_LINE


def parse_dockerd_argv(argv: Sequence[str], origins: Sequence[str] | None = None) -> CommandLine:
    """Parse dockerd's argv into daemon.json keys with the values given on the command line.

    origins, when given, names for each word of argv the file that wrote it. Flags follow
    dockerd's parser (pflag): a boolean flag takes a value only after '=', any other flag
    takes the next word, and a one-letter flag may carry its value attached (`-Hfd://`).
    """
    words = list(argv)
    where = list(origins) if origins is not None else [COMMAND_LINE] * len(words)
    command_line = CommandLine(words)
    index = 1
    while index < len(words):
        item, origin = words[index], where[index]
        index += 1
        if not item.startswith("-") or item in ("-", "--"):
            continue
        flag, value, has_value = _split_flag(item)
        if not has_value and flag not in BOOLEAN_FLAGS and index < len(words):
            value = words[index]
            index += 1
        elif not has_value:
            value = "true"
        key = FLAG_TO_KEY.get(flag, flag)
        command_line.options.setdefault(key, []).append(value)
        command_line.origins.setdefault(key, []).append(origin)
    return command_line


def _split_flag(item: str) -> tuple[str, str, bool]:
    """Return a flag word's long name, its attached value, and whether one was attached."""
    if item.startswith("--"):
        flag, has_value, value = item[2:].partition("=")
        return flag, value, bool(has_value)
    letter, rest = item[1:2], item[2:]
    flag = SHORT_FLAGS.get(letter, letter)
    if rest.startswith("="):
        return flag, rest[1:], True
    return flag, rest, bool(rest)


def conflicts(config: dict[str, Any], command_line: CommandLine) -> list[str]:
    """Return the daemon.json keys also set on the command line (dockerd rejects such keys).

    NOTE: dockerd 20.10.24 was seen to start with `runtimes` in both places, though it rejects
    other keys such as `debug`. gpurun treats every duplicate as a conflict.
    """
    keys = [key for key in command_line.options if key not in COMMAND_LINE_ONLY]
    return sorted(key for key in keys if key in config)


def config_file_path(command_line: CommandLine) -> str:
    """Return the daemon.json path dockerd reads: --config-file, else the default."""
    return command_line.value("config-file") or DAEMON_JSON


def undefined_default_runtime(config: dict[str, Any], command_line: CommandLine) -> str | None:
    """Return the default runtime if neither daemon.json nor a flag defines it, else None."""
    default = config.get("default-runtime") or command_line.value("default-runtime")
    defined = set(runtime_paths(config)) | set(command_line.runtimes()) | BUILTIN_RUNTIMES
    return default if default and default not in defined else None
