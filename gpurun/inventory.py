"""Ansible-style YAML inventories: hosts, groups, and variables for each.

Variables merge from `all` through each group down to the host, the host's own winning.
Connection variables use Ansible's names, so an inventory serves both tools.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpurun.errors import ConfigError

# Ansible connection variables and the runbook parameter each one fills.
CONNECTION_VARIABLES = {
    "ansible_host": "address",
    "ansible_port": "port",
    "ansible_user": "user",
    "ansible_ssh_private_key_file": "key_file",
    "ansible_become": "become",
    "gpurun_known_hosts_file": "known_hosts_file",
}

GROUP_KEYS = {"hosts", "vars", "children"}


@dataclass
class InventoryHost:
    name: str
    groups: list[str]
    variables: dict[str, Any] = field(default_factory=dict)

    def parameters(self) -> dict[str, Any]:
        """Return the runbook parameters for this host, connection variables renamed."""
        parameters: dict[str, Any] = {"host": self.name, "address": self.name}
        for key, value in self.variables.items():
            if key in CONNECTION_VARIABLES:
                parameters[CONNECTION_VARIABLES[key]] = value
            elif not key.startswith(("ansible_", "gpurun_")):
                parameters[key] = value
        return parameters


def load_inventory(path: Path) -> dict[str, InventoryHost]:
    """Load an inventory file; errors name the file, the line and the bad key."""
    try:
        root = yaml.compose(path.read_text())
    except FileNotFoundError as error:
        raise ConfigError(f"inventory {path} not found\n  next step: give an existing file "
                          f"with --inventory, or run `gpurun sandbox up` to write one") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"inventory {path} is not valid YAML: {error}") from error
    if root is None:
        return {}
    top = _mapping(root, path, "the top level")
    hosts: dict[str, InventoryHost] = {}
    for name, node in top.items():
        _walk_group(name, node, path, {}, [], hosts)
    return hosts


def select_hosts(hosts: dict[str, InventoryHost], names: list[str], groups: list[str],
                 path: Path) -> list[InventoryHost]:
    """Return the hosts named or in the groups named; all hosts when neither is given."""
    unknown = [n for n in names if n not in hosts]
    known_groups = {g for h in hosts.values() for g in h.groups}
    unknown += [g for g in groups if g not in known_groups]
    if unknown:
        raise ConfigError(
            f"not in inventory {path}: {', '.join(unknown)}\n"
            f"  hosts there: {', '.join(sorted(hosts)) or 'none'}; "
            f"groups: {', '.join(sorted(known_groups)) or 'none'}"
        )
    if not names and not groups:
        return list(hosts.values())
    return [h for h in hosts.values() if h.name in names or set(h.groups) & set(groups)]


def _walk_group(name: str, node: yaml.Node, path: Path, inherited: dict[str, Any],
                parents: list[str], hosts: dict[str, InventoryHost]) -> None:
    group = _mapping(node, path, f"group {name}") if not _is_null(node) else {}
    for key, line in _key_lines(node).items():
        if key not in GROUP_KEYS:
            raise ConfigError(
                f"{path} line {line}: unknown key {key!r} in group "
                f"{name}; a group has only {', '.join(sorted(GROUP_KEYS))}"
            )
    variables = dict(inherited)
    if "vars" in group:
        variables.update(_plain(group["vars"], path, f"vars of group {name}"))
    lineage = parents + [name]

    if "hosts" in group and not _is_null(group["hosts"]):
        for host_name, host_node in _mapping(group["hosts"], path, f"hosts of {name}").items():
            own = {} if _is_null(host_node) else _plain(host_node, path, f"host {host_name}")
            host = hosts.setdefault(host_name, InventoryHost(host_name, []))
            host.groups = sorted(set(host.groups) | set(lineage))
            host.variables = {**variables, **host.variables, **own}

    if "children" in group and not _is_null(group["children"]):
        for child_name, child in _mapping(group["children"], path, f"children of {name}").items():
            _walk_group(child_name, child, path, variables, lineage, hosts)


def _mapping(node: yaml.Node, path: Path, where: str) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path} line {node.start_mark.line + 1}: {where} must be a mapping")
    return {str(key.value): value for key, value in node.value}


def _key_lines(node: yaml.Node) -> dict[str, int]:
    """Return the 1-based line of each key of a mapping node."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value): key.start_mark.line + 1 for key, _ in node.value}


def _plain(node: yaml.Node, path: Path, where: str) -> dict[str, Any]:
    value = yaml.safe_load(yaml.serialize(node))
    if not isinstance(value, dict):
        raise ConfigError(f"{path} line {node.start_mark.line + 1}: {where} must be a mapping")
    return value


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")
