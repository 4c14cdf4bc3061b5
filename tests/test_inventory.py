"""Ansible-style inventories: merging, selection, and errors that name the file and line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ssh_alias import ssh_alias

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


# -- Ansible features: ranges, group_vars and host_vars, precedence ------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_host_ranges_expand(tmp_path):
    path = write(tmp_path / "hosts.yml", "all:\n  hosts:\n    gpu[01:03]:\n    node-[a:c]:\n"
                 "    rack[1:9:4]:\n")
    assert sorted(load_inventory(path)) == [
        "gpu01", "gpu02", "gpu03", "node-a", "node-b", "node-c", "rack1", "rack5", "rack9"]


def test_empty_host_range_names_line(tmp_path):
    path = write(tmp_path / "hosts.yml", "all:\n  hosts:\n    ok:\n    gpu[5:1]:\n")
    with pytest.raises(ConfigError) as raised:
        load_inventory(path)
    assert f"{path} line 4" in str(raised.value)
    assert "gpu[5:1]" in str(raised.value)


def test_group_and_host_vars_files(tmp_path):
    path = write(tmp_path / "hosts.yml", """\
all:
  vars:
    bin_dir: /usr/bin
  children:
    rack1:
      vars:
        bundle_dir: bundles/inline
      hosts:
        gpu1:
        gpu2:
""")
    write(tmp_path / "group_vars" / "all.yml", "package_format: deb\n")
    write(tmp_path / "group_vars" / "rack1" / "main.yaml", "bundle_dir: bundles/rack1\n")
    write(tmp_path / "host_vars" / "gpu2.yml", "bin_dir: /opt/bin\nansible_port: 2202\n")
    hosts = load_inventory(path)
    assert hosts["gpu1"].variables == {"bin_dir": "/usr/bin", "package_format": "deb",
                                       "bundle_dir": "bundles/rack1"}
    assert hosts["gpu2"].variables["bin_dir"] == "/opt/bin"
    assert hosts["gpu2"].parameters()["port"] == 2202
    assert hosts["gpu2"].source("bin_dir") == f"{tmp_path / 'host_vars' / 'gpu2.yml'} line 1"


def test_deeper_group_wins(tmp_path):
    # Ansible merges all, then groups by depth: a child group overrides its parent.
    path = write(tmp_path / "hosts.yml", """\
all:
  children:
    site:
      vars: {bin_dir: /site}
      children:
        rack:
          vars: {bin_dir: /rack}
          hosts: {gpu1: {}}
      hosts: {gpu2: {}}
""")
    hosts = load_inventory(path)
    assert hosts["gpu1"].variables["bin_dir"] == "/rack"
    assert hosts["gpu1"].groups == ["all", "rack", "site"]
    assert hosts["gpu2"].variables["bin_dir"] == "/site"


def test_login_left_to_ssh_config(tmp_path):
    # Without ansible_user and ansible_port, ssh's configuration decides, as in Ansible.
    path = write(tmp_path / "hosts.yml", "all:\n  hosts:\n    gpu1:\n      ansible_host: rack1-gpu1\n")
    parameters = load_inventory(path)["gpu1"].parameters()
    assert parameters["address"] == "rack1-gpu1"
    assert parameters["user"] == ""
    assert parameters["port"] == 0


def test_ssh_alias_resolves_user_and_port():
    from gpurun.host.connection import resolve_login

    alias = f"gpurun-alias-{os.getpid()}"
    with ssh_alias(alias, HostName="127.0.0.1", User="ops", Port="2222"):
        assert resolve_login(alias, "", 0) == ("ops", 2222)
        assert resolve_login(alias, "root", 0) == ("root", 2222)
        assert resolve_login(alias, "", 22) == ("ops", 22)


# -- validation: each error names the file, the line and the key ---------------------------------


@pytest.mark.parametrize("entry, words", [
    ("ansible_port: http", ["ansible_port", "'http'", "1 to 65535"]),
    ("ansible_port: 70000", ["ansible_port", "70000"]),
    ("ansible_become: maybe", ["ansible_become", "'maybe'", "true or false"]),
    ("ansible_user: [a, b]", ["ansible_user", "non-empty string"]),
])
def test_bad_connection_variable_names_line(tmp_path, entry, words):
    path = write(tmp_path / "hosts.yml", f"all:\n  hosts:\n    gpu1:\n      {entry}\n")
    with pytest.raises(ConfigError) as raised:
        load_inventory(path)
    message = str(raised.value)
    assert f"{path} line 4" in message
    for word in words:
        assert word in message


def test_duplicate_key_names_both_lines(tmp_path):
    path = write(tmp_path / "hosts.yml",
                 "all:\n  hosts:\n    gpu1:\n      bin_dir: /a\n      bin_dir: /b\n")
    with pytest.raises(ConfigError) as raised:
        load_inventory(path)
    assert f"{path} line 5" in str(raised.value)
    assert "first on line 4" in str(raised.value)


def test_unsafe_host_name_rejected(tmp_path):
    path = write(tmp_path / "hosts.yml", "all:\n  hosts:\n    ../escape:\n")
    with pytest.raises(ConfigError) as raised:
        load_inventory(path)
    assert f"{path} line 3" in str(raised.value)
    assert "'../escape'" in str(raised.value)


def test_unknown_variable_names_file_and_line(tmp_path):
    from gpurun.inventory import check_variables

    path = write(tmp_path / "hosts.yml", "all:\n  hosts:\n    gpu1:\n")
    write(tmp_path / "host_vars" / "gpu1.yml", "bundle_dir: b\nbin_dri: /usr/bin\n")
    host = load_inventory(path)["gpu1"]
    with pytest.raises(ConfigError) as raised:
        check_variables(host, {"bin_dir", "bundle_dir", "host"})
    message = str(raised.value)
    assert f"{tmp_path / 'host_vars' / 'gpu1.yml'} line 2" in message
    assert "'bin_dri'" in message
    assert "did you mean bin_dir?" in message


def test_unknown_gpurun_variable_rejected(tmp_path):
    from gpurun.inventory import check_variables

    path = write(tmp_path / "hosts.yml",
                 "all:\n  hosts:\n    gpu1:\n      gpurun_known_host_file: /k\n")
    with pytest.raises(ConfigError, match="did you mean gpurun_known_hosts_file"):
        check_variables(load_inventory(path)["gpu1"], {"host"})


def test_other_ansible_variables_allowed(tmp_path):
    from gpurun.inventory import check_variables

    path = write(tmp_path / "hosts.yml",
                 "all:\n  hosts:\n    gpu1:\n      ansible_python_interpreter: /usr/bin/python3\n")
    host = load_inventory(path)["gpu1"]
    check_variables(host, {"host"})
    assert "ansible_python_interpreter" not in host.parameters()


def test_select_by_pattern(inventory_file):
    hosts = load_inventory(inventory_file)
    assert sorted(h.name for h in select_hosts(hosts, ["gpu*"], [], inventory_file)) == [
        "gpu1", "gpu2"]
    with pytest.raises(ConfigError, match="node\\*"):
        select_hosts(hosts, ["node*"], [], inventory_file)
