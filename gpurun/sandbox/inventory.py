"""The Ansible-style inventory YAML in which `up` lists the sandbox hosts for gpurun's runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gpurun.errors import ConfigError

DEFAULT_INVENTORY = Path("parameters/sandbox.yaml")


def _load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(
            f"invalid YAML in inventory {path}: {error}. Fix the file or pass another --inventory"
        ) from error
    if document is None:
        return {}
    if not isinstance(document, dict) or not isinstance(document.get("all", {}), dict):
        raise ConfigError(
            f"invalid inventory {path}: expected a mapping with an 'all' group at the top. "
            f"fix the file or pass another --inventory"
        )
    return document


def _hosts_of(document: dict[str, Any], path: Path) -> dict[str, Any]:
    group = document.setdefault("all", {})
    hosts = group.get("hosts")
    if hosts is None:
        hosts = group["hosts"] = {}
    if not isinstance(hosts, dict):
        raise ConfigError(
            f"invalid inventory {path}: 'all.hosts' is a {type(hosts).__name__}, expected a "
            f"mapping of host names. Fix the file or pass another --inventory"
        )
    return hosts


def _save(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(yaml.safe_dump(document, sort_keys=False, default_flow_style=False))
    partial.replace(path)


def set_inventory_host(path: Path, name: str, variables: dict[str, Any]) -> None:
    """Add or replace host `name` under all.hosts, keeping every other entry and key."""
    document = _load(path)
    _hosts_of(document, path)[name] = variables
    _save(path, document)


def remove_inventory_host(path: Path, name: str) -> None:
    """Remove host `name`, and delete the file when only an empty all.hosts is left."""
    document = _load(path)
    if not document:
        return
    hosts = _hosts_of(document, path)
    if name not in hosts:
        return
    del hosts[name]

    if document == {"all": {"hosts": {}}}:
        path.unlink()
    else:
        _save(path, document)
