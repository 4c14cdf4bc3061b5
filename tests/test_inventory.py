"""Ansible-style inventories: merging, selection, and errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpurun.errors import ConfigError
from gpurun.inventory import load_inventory, select_hosts

INVENTORY = """\
all:
  vars:
    bundle_dir: bundles/site
    bin_dir: /usr/bin
  hosts:
    lone:
      ansible_host: 192.0.2.9
  children:
    rack1:
      vars:
        ansible_user: ops
        ansible_become: true
        bin_dir: /usr/local/bin
      hosts:
        gpu1:
          ansible_host: 192.0.2.1
          ansible_port: 2222
        gpu2:
          bin_dir: /opt/docker/bin
"""


@pytest.fixture
def inventory_file(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    return path


def test_variables_merge_from_all_to_host(inventory_file):
    hosts = load_inventory(inventory_file)
    assert hosts["gpu1"].parameters() == {
        "host": "gpu1", "address": "192.0.2.1", "port": 2222, "user": "ops", "become": True,
        "bundle_dir": "bundles/site", "bin_dir": "/usr/local/bin",
    }
    assert hosts["gpu2"].parameters()["bin_dir"] == "/opt/docker/bin"
    assert hosts["gpu2"].parameters()["address"] == "gpu2"
    assert hosts["lone"].parameters()["bin_dir"] == "/usr/bin"


def test_groups_recorded(inventory_file):
    hosts = load_inventory(inventory_file)
    assert hosts["gpu1"].groups == ["all", "rack1"]
    assert hosts["lone"].groups == ["all"]


def test_select_by_host_and_group(inventory_file):
    hosts = load_inventory(inventory_file)
    assert [h.name for h in select_hosts(hosts, ["lone"], [], inventory_file)] == ["lone"]
    assert sorted(h.name for h in select_hosts(hosts, [], ["rack1"], inventory_file)) == [
        "gpu1", "gpu2"]
    assert len(select_hosts(hosts, [], [], inventory_file)) == 3


def test_unknown_host_is_named(inventory_file):
    hosts = load_inventory(inventory_file)
    with pytest.raises(ConfigError) as raised:
        select_hosts(hosts, ["gpu9"], [], inventory_file)
    assert "gpu9" in str(raised.value)
    assert "gpu1" in str(raised.value)


def test_bad_group_key_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("all:\n  hosts:\n    a:\n  childs:\n    b: {}\n")
    with pytest.raises(ConfigError) as raised:
        load_inventory(path)
    assert "line 4" in str(raised.value)
    assert "'childs'" in str(raised.value)
    assert str(path) in str(raised.value)


def test_missing_inventory_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="gpurun sandbox up"):
        load_inventory(tmp_path / "absent.yaml")


def test_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("all:\n  hosts: [a\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_inventory(path)
