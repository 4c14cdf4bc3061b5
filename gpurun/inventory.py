"""Ansible-style YAML inventories: hosts, groups, and variables for each.

The format is Ansible's YAML inventory, so one file serves both tools:
- top-level groups (usually `all`), each with `hosts`, `vars` and `children`;
- host ranges such as `gpu[01:16]` or `node-[a:d]`;
- `group_vars/<group>.yml` and `host_vars/<host>.yml` (or a folder of YAML files of that
  name) beside the inventory file;
- Ansible's connection variables (ansible_host, ansible_port, ansible_user, ...).

Variables merge as Ansible merges them, and the last one set wins. First come `all`'s, then
each other group's from the shallowest to the deepest (alphabetical among equals), the
inventory's vars before the group_vars file. Then come the host's inventory vars, and last its
host_vars file.

As in Ansible, a host without ansible_user or ansible_port logs in with what ssh's own
configuration gives (~/.ssh/config, then ssh's defaults), and ansible_host may be a `Host`
alias from ~/.ssh/config.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpurun.errors import ConfigError

# Ansible connection variables and the runbook parameter each one fills. The ansible_ssh_*
# names are the older spellings that Ansible still accepts.
CONNECTION_VARIABLES = {
    "ansible_host": "address",
    "ansible_ssh_host": "address",
    "ansible_port": "port",
    "ansible_ssh_port": "port",
    "ansible_user": "user",
    "ansible_ssh_user": "user",
    "ansible_ssh_private_key_file": "key_file",
    "ansible_become": "become",
    "gpurun_known_hosts_file": "known_hosts_file",
}

# gpurun_* variables that are not runbook parameters but are allowed in an inventory.
# The sandbox writes gpurun_sandbox_init for its own hosts.
GPURUN_VARIABLES = {"gpurun_known_hosts_file", "gpurun_sandbox_init"}

GROUP_KEYS = {"hosts", "vars", "children"}
VARIABLE_FOLDERS = ("group_vars", "host_vars")
YAML_SUFFIXES = ("", ".yml", ".yaml", ".json")

# Host names become folder names under outputs/, so they may not hold '/' or start with '.'.
HOST_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$")
HOST_RANGE = re.compile(r"\[([0-9]+|[a-z]):([0-9]+|[a-z])(?::([0-9]+))?\]")
BOOLEAN_WORDS = {"yes": True, "true": True, "on": True, "1": True,
                 "no": False, "false": False, "off": False, "0": False}


@dataclass
class InventoryHost:
    """One host of an inventory, with its merged variables and where each one was set."""

    name: str
    groups: list[str]
    variables: dict[str, Any] = field(default_factory=dict)
    # "FILE line N" for each variable, and for the host itself under the key "".
    sources: dict[str, str] = field(default_factory=dict)

    def parameters(self) -> dict[str, Any]:
        """Return the runbook parameters for this host, connection variables renamed.

        user and port are always present: an empty user or port 0 leaves the choice to ssh's
        configuration, as Ansible does when ansible_user or ansible_port is not set.
        """
        parameters: dict[str, Any] = {"host": self.name, "address": self.name, "user": "",
                                      "port": 0}
        for key, value in self.variables.items():
            if key in CONNECTION_VARIABLES:
                parameters[CONNECTION_VARIABLES[key]] = value
            elif not key.startswith(("ansible_", "gpurun_")):
                parameters[key] = value
        return parameters

    def source(self, variable: str = "") -> str:
        """Return where a variable (or, with no name, the host) was set: 'FILE line N'."""
        return self.sources.get(variable) or self.sources.get("", "the inventory")


@dataclass
class _Group:
    name: str
    depth: int
    variables: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


@dataclass
class _HostEntry:
    name: str
    groups: set[str] = field(default_factory=set)
    variables: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


def load_inventory(path: Path) -> dict[str, InventoryHost]:
    """Load an inventory file and its group_vars and host_vars; errors name file, line, key."""
    root = _compose(path)
    if root is None:
        return {}
    groups: dict[str, _Group] = {"all": _Group("all", 0)}
    entries: dict[str, _HostEntry] = {}
    for name, node, line in _mapping_items(root, path, "the top level"):
        depth = 0 if name == "all" else 1
        _walk_group(name, node, line, path, depth, ["all"] if name != "all" else [], groups,
                    entries)

    folder = path.resolve().parent
    for group in groups.values():
        variables, sources = _variable_files(folder / "group_vars", group.name)
        group.variables.update(variables)
        group.sources.update(sources)

    hosts = {}
    for entry in entries.values():
        host = _merge(entry, groups)
        variables, sources = _variable_files(folder / "host_vars", entry.name)
        host.variables.update(variables)
        host.sources.update(sources)
        _check_connection_variables(host)
        hosts[host.name] = host
    return hosts


def select_hosts(hosts: dict[str, InventoryHost], names: list[str], groups: list[str],
                 path: Path) -> list[InventoryHost]:
    """Return the hosts named or in the groups named; all hosts when neither is given.

    A name may be a shell-style pattern such as `gpu1*`; each one must match a host.
    """
    known_groups = {g for h in hosts.values() for g in h.groups}
    unknown = [n for n in names if not fnmatch.filter(hosts, n)]
    unknown += [g for g in groups if g not in known_groups]
    if unknown:
        raise ConfigError(
            f"not in inventory {path}: {', '.join(unknown)}\n"
            f"  hosts there: {', '.join(sorted(hosts)) or 'none'}; "
            f"groups: {', '.join(sorted(known_groups)) or 'none'}"
        )
    if not names and not groups:
        return list(hosts.values())
    named = {match for pattern in names for match in fnmatch.filter(hosts, pattern)}
    return [h for h in hosts.values() if h.name in named or set(h.groups) & set(groups)]


def check_variables(host: InventoryHost, known: set[str]) -> None:
    """Reject a variable that no runbook takes: most often a typo that would be ignored.

    The error names the file and line that set it and the closest runbook parameter.
    """
    for key in sorted(host.variables):
        if key in CONNECTION_VARIABLES or key in GPURUN_VARIABLES:
            continue
        if key.startswith("ansible_") or key in known:
            continue
        candidates = sorted(known) + sorted(GPURUN_VARIABLES)
        close = difflib.get_close_matches(key, candidates, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(
            f"{host.source(key)}: host {host.name} sets {key!r}, which no runbook takes\n"
            f"  next step: {hint}runbook parameters are {', '.join(sorted(known))}"
        )


# -- reading the file ------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that rejects a key given twice in one mapping, naming both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        _reject_duplicate_keys(node, self.name)
        return super().construct_mapping(node, deep=deep)


def _compose(path: Path) -> yaml.Node | None:
    try:
        text = path.read_text()
    except FileNotFoundError as error:
        raise ConfigError(f"inventory {path} not found\n  next step: give an existing file "
                          f"with --inventory, or run `gpurun sandbox up` to write one") from error
    try:
        return yaml.compose(text, Loader=_named_loader(path))
    except yaml.YAMLError as error:
        raise ConfigError(f"inventory {path} is not valid YAML: {error}") from error


def _named_loader(path: Path) -> type[_StrictLoader]:
    """Return a loader class whose error marks name `path` instead of '<unicode string>'."""

    class Loader(_StrictLoader):
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.name = str(path)

    return Loader


def _reject_duplicate_keys(node: yaml.MappingNode, file_name: str) -> None:
    seen: dict[str, int] = {}
    for key, _ in node.value:
        line = key.start_mark.line + 1
        if str(key.value) in seen:
            raise ConfigError(
                f"{file_name} line {line}: key {key.value!r} appears twice in one mapping "
                f"(first on line {seen[str(key.value)]}), so one value would be lost\n"
                f"  next step: keep one of them"
            )
        seen[str(key.value)] = line


def _walk_group(name: str, node: yaml.Node, line: int, path: Path, depth: int,
                parents: list[str], groups: dict[str, _Group],
                entries: dict[str, _HostEntry]) -> None:
    if not HOST_NAME.match(name):
        raise ConfigError(f"{path} line {line}: invalid group name {name!r}: use letters, "
                          f"digits, '_', '.', ':' and '-'")
    group = groups.setdefault(name, _Group(name, depth))
    group.depth = max(group.depth, depth)
    lineage = parents + [name]
    if _is_null(node):
        return

    items = {key: (value, key_line) for key, value, key_line in
             _mapping_items(node, path, f"group {name}")}
    for key, (_, key_line) in items.items():
        if key not in GROUP_KEYS:
            raise ConfigError(
                f"{path} line {key_line}: unknown key {key!r} in group "
                f"{name}; a group has only {', '.join(sorted(GROUP_KEYS))}"
            )

    if "vars" in items and not _is_null(items["vars"][0]):
        variables, sources = _variables(items["vars"][0], path, f"vars of group {name}")
        group.variables.update(variables)
        group.sources.update(sources)

    if "hosts" in items and not _is_null(items["hosts"][0]):
        for pattern, host_node, host_line in _mapping_items(items["hosts"][0], path,
                                                             f"hosts of group {name}"):
            for host_name in _expand_range(pattern, path, host_line):
                entry = entries.setdefault(host_name, _HostEntry(host_name))
                entry.groups.update(lineage)
                entry.sources.setdefault("", f"{path} line {host_line}")
                if not _is_null(host_node):
                    variables, sources = _variables(host_node, path, f"host {host_name}")
                    entry.variables.update(variables)
                    entry.sources.update(sources)

    if "children" in items and not _is_null(items["children"][0]):
        for child, child_node, child_line in _mapping_items(items["children"][0], path,
                                                             f"children of group {name}"):
            _walk_group(child, child_node, child_line, path, depth + 1, lineage, groups, entries)


def _expand_range(pattern: str, path: Path, line: int) -> list[str]:
    """Expand one Ansible host range such as gpu[01:16] or node-[a:d] (stride: [1:9:2])."""
    match = HOST_RANGE.search(pattern)
    if match is None:
        names = [pattern]
    else:
        first, last, stride = match.group(1), match.group(2), int(match.group(3) or 1)
        prefix, suffix = pattern[:match.start()], pattern[match.end():]
        if first.isdigit() != last.isdigit() or stride < 1:
            raise ConfigError(f"{path} line {line}: invalid host range {pattern!r}: use "
                              f"[01:16], [a:f] or [1:9:2]")
        if first.isdigit():
            width = len(first) if first.startswith("0") else 0
            values = [str(n).zfill(width) for n in range(int(first), int(last) + 1, stride)]
        else:
            letters = string.ascii_lowercase
            values = list(letters[letters.index(first):letters.index(last) + 1:stride])
        if not values:
            raise ConfigError(f"{path} line {line}: host range {pattern!r} is empty: the "
                              f"first value comes after the last")
        names = [prefix + value + suffix for value in values]

    for name in names:
        if not HOST_NAME.match(name):
            raise ConfigError(
                f"{path} line {line}: invalid host name {name!r}: use letters, digits, '_', "
                f"'.', ':' and '-', not starting with '.' or '-', because it names a folder "
                f"under outputs/"
            )
    return names


def _merge(entry: _HostEntry, groups: dict[str, _Group]) -> InventoryHost:
    """Merge a host's variables from all, then its groups by depth and name, then its own."""
    member_of = sorted((groups[g] for g in entry.groups | {"all"}),
                       key=lambda g: (g.name != "all", g.depth, g.name))
    variables: dict[str, Any] = {}
    sources: dict[str, str] = {"": entry.sources.get("", "")}
    for group in member_of:
        variables.update(group.variables)
        sources.update(group.sources)
    variables.update(entry.variables)
    sources.update({k: v for k, v in entry.sources.items() if k})
    return InventoryHost(entry.name, sorted(g.name for g in member_of), variables, sources)


def _variable_files(folder: Path, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Read group_vars/<name> or host_vars/<name>: one YAML file, or a folder of them."""
    variables: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if not folder.is_dir():
        return variables, sources
    files = [folder / f"{name}{suffix}" for suffix in YAML_SUFFIXES]
    for candidate in files:
        if candidate.is_dir():
            files += sorted(p for p in candidate.iterdir()
                            if p.suffix in (".yml", ".yaml", ".json") and p.is_file())
    for file in files:
        if not file.is_file():
            continue
        root = _compose(file)
        if root is None:
            continue
        found, lines = _variables(root, file, f"{folder.name}/{name}")
        variables.update(found)
        sources.update(lines)
    return variables, sources


def _variables(node: yaml.Node, path: Path, where: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Return a mapping node's values and 'FILE line N' for each key."""
    items = _mapping_items(node, path, where)
    values = yaml.load(yaml.serialize(node), Loader=_named_loader(path))
    sources = {key: f"{path} line {line}" for key, _, line in items}
    return {str(k): v for k, v in values.items()}, sources


def _check_connection_variables(host: InventoryHost) -> None:
    """Reject connection variables of the wrong type, and normalize port and become."""
    for key, value in list(host.variables.items()):
        target = CONNECTION_VARIABLES.get(key)
        if target is None:
            continue
        where = f"{host.source(key)}: host {host.name}: {key}"
        if target == "port":
            if isinstance(value, bool) or not str(value).isdigit() or not 0 < int(value) < 65536:
                raise ConfigError(f"{where} is {value!r}; a port is a number from 1 to 65535")
            host.variables[key] = int(value)
        elif target == "become":
            if not isinstance(value, bool) and str(value).lower() not in BOOLEAN_WORDS:
                raise ConfigError(f"{where} is {value!r}; use true or false")
            host.variables[key] = value if isinstance(value, bool) else \
                BOOLEAN_WORDS[str(value).lower()]
        elif not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where} is {value!r}; it must be a non-empty string")


def _mapping_items(node: yaml.Node, path: Path, where: str) -> list[tuple[str, yaml.Node, int]]:
    """Return (key, value node, 1-based line of the key) for each entry of a mapping node."""
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path} line {node.start_mark.line + 1}: {where} must be a mapping")
    _reject_duplicate_keys(node, str(path))
    return [(str(key.value), value, key.start_mark.line + 1) for key, value in node.value]


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")
