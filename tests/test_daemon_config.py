"""daemon.json and dockerd command-line handling: tables of before and after."""

from __future__ import annotations

import pytest

from gpurun import daemon_config
from gpurun.errors import ConfigError

RUNTIME = "/usr/bin/nvidia-container-runtime"


@pytest.mark.parametrize(
    ("before", "make_default", "after"),
    [
        ({}, True, {"runtimes": {"nvidia": {"path": RUNTIME}}, "default-runtime": "nvidia"}),
        ({}, False, {"runtimes": {"nvidia": {"path": RUNTIME}}}),
        # Unknown keys and other runtimes are kept as they were.
        ({"log-driver": "journald", "x-custom": [1, 2], "runtimes": {"crun": {"path": "/c"}}},
         True,
         {"log-driver": "journald", "x-custom": [1, 2],
          "runtimes": {"crun": {"path": "/c"}, "nvidia": {"path": RUNTIME}},
          "default-runtime": "nvidia"}),
        # An undefined default (the field case) gets its runtime defined.
        ({"default-runtime": "nvidia"}, True,
         {"default-runtime": "nvidia", "runtimes": {"nvidia": {"path": RUNTIME}}}),
        # Runtime arguments the operator set stay; the path is corrected.
        ({"runtimes": {"nvidia": {"path": "/old", "runtimeArgs": ["--debug"]}}}, True,
         {"runtimes": {"nvidia": {"path": RUNTIME, "runtimeArgs": ["--debug"]}},
          "default-runtime": "nvidia"}),
        # Switching back to runc names runc, so a reload applies it, and keeps nvidia.
        ({"runtimes": {"nvidia": {"path": RUNTIME}}, "default-runtime": "nvidia"}, False,
         {"runtimes": {"nvidia": {"path": RUNTIME}}, "default-runtime": "runc"}),
        # Another default the operator chose stays.
        ({"runtimes": {"crun": {"path": "/c"}}, "default-runtime": "crun"}, False,
         {"runtimes": {"crun": {"path": "/c"}, "nvidia": {"path": RUNTIME}},
          "default-runtime": "crun"}),
    ],
)
def test_with_nvidia_runtime(before, make_default, after):
    original = repr(before)
    assert daemon_config.with_nvidia_runtime(before, RUNTIME, make_default=make_default) == after
    assert repr(before) == original, "the input mapping must not be modified"


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ('{\n  "a": 1\n  "b": 2\n}\n', 3, 3),   # missing comma between two keys
        ('{\n  "a": 1,\n}\n', 3, 1),            # trailing comma before }
        ('{"a": 1}\n{"b": 2}\n', 2, 1),         # a second object appended
    ],
)
def test_broken_daemon_json_names_line_and_column(text, line, column):
    with pytest.raises(ConfigError) as raised:
        daemon_config.parse_daemon_json(text, "/etc/docker/daemon.json", "gpu7")
    message = str(raised.value)
    assert "/etc/docker/daemon.json" in message
    assert "gpu7" in message
    assert f"line {line} column {column}" in message


def test_daemon_json_must_be_an_object():
    with pytest.raises(ConfigError, match="JSON list"):
        daemon_config.parse_daemon_json("[1]", "/etc/docker/daemon.json")


@pytest.mark.parametrize("text", [None, "", "  \n"])
def test_missing_or_empty_daemon_json_is_empty(text):
    assert daemon_config.parse_daemon_json(text) == {}


def test_render_is_stable_and_keeps_order():
    config = {"z": 1, "a": {"b": [1]}}
    rendered = daemon_config.render_daemon_json(config)
    assert rendered == '{\n    "z": 1,\n    "a": {\n        "b": [\n            1\n        ]\n    }\n}\n'
    assert daemon_config.parse_daemon_json(rendered) == config


@pytest.mark.parametrize(
    ("argv", "key", "values"),
    [
        (["/usr/bin/dockerd", "-H", "fd://"], "hosts", ["fd://"]),
        (["dockerd", "--add-runtime=nvidia=/usr/bin/nvidia-container-runtime"], "runtimes",
         ["nvidia=/usr/bin/nvidia-container-runtime"]),
        (["dockerd", "--add-runtime", "nvidia=/x"], "runtimes", ["nvidia=/x"]),
        (["dockerd", "--default-runtime=nvidia"], "default-runtime", ["nvidia"]),
        (["dockerd", "--config-file", "/etc/d.json"], "config-file", ["/etc/d.json"]),
        (["dockerd", "--debug", "--iptables=false"], "iptables", ["false"]),
        (["dockerd", "--label", "a=1", "--label=b=2"], "labels", ["a=1", "b=2"]),
    ],
)
def test_parse_dockerd_argv(argv, key, values):
    assert daemon_config.parse_dockerd_argv(argv).options[key] == values


def test_boolean_flag_takes_no_value_word():
    command_line = daemon_config.parse_dockerd_argv(["dockerd", "--debug", "fd://"])
    assert command_line.options["debug"] == ["true"]
    assert "fd://" not in sum(command_line.options.values(), [])


def test_conflicts_between_flags_and_file():
    command_line = daemon_config.parse_dockerd_argv(
        ["dockerd", "-H", "fd://", "--add-runtime=nvidia=/x", "--config-file=/etc/d.json"])
    config = {"hosts": ["unix:///run/docker.sock"], "runtimes": {"nvidia": {"path": "/x"}},
              "debug": True}
    assert daemon_config.conflicts(config, command_line) == ["hosts", "runtimes"]


def test_added_runtimes_from_flags():
    command_line = daemon_config.parse_dockerd_argv(
        ["dockerd", "--add-runtime=nvidia=/usr/bin/nvidia-container-runtime"])
    assert command_line.runtimes() == {"nvidia": "/usr/bin/nvidia-container-runtime"}


def test_config_file_path_default_and_flag():
    assert daemon_config.config_file_path(
        daemon_config.parse_dockerd_argv(["dockerd"])) == "/etc/docker/daemon.json"
    assert daemon_config.config_file_path(
        daemon_config.parse_dockerd_argv(["dockerd", "--config-file=/srv/d.json"])) == "/srv/d.json"


@pytest.mark.parametrize(
    ("argv", "key", "values"),
    [
        (["dockerd", "-Hfd://"], "hosts", ["fd://"]),
        (["dockerd", "-D"], "debug", ["true"]),
        (["dockerd", "-G", "docker", "-l", "warn"], "group", ["docker"]),
        (["dockerd", "-G", "docker", "-l", "warn"], "log-level", ["warn"]),
        (["dockerd", "-g", "/srv/docker"], "data-root", ["/srv/docker"]),
        (["dockerd", "--graph=/srv/docker"], "data-root", ["/srv/docker"]),
        (["dockerd", "--iptables=false", "--ip-masq", "--bip", "10.0.0.1/24"], "bip",
         ["10.0.0.1/24"]),
        (["dockerd", "--iptables=false", "--ip-masq", "--bip", "10.0.0.1/24"], "ip-masq",
         ["true"]),
    ],
)
def test_parse_short_and_boolean_flags(argv, key, values):
    assert daemon_config.parse_dockerd_argv(argv).options[key] == values


def test_origins_name_the_file_per_option():
    argv = ["dockerd", "-H", "fd://", "--add-runtime=nvidia=/x"]
    origins = ["/u/docker.service", "/u/docker.service", "/u/docker.service", "/d/nvidia.conf"]
    command_line = daemon_config.parse_dockerd_argv(argv, origins)
    assert command_line.places("runtimes") == "/d/nvidia.conf"
    assert command_line.places("hosts") == "/u/docker.service"
    assert command_line.places("labels") == daemon_config.COMMAND_LINE


def test_duplicate_key_is_rejected_with_line():
    text = '{\n  "debug": true,\n  "debug": false\n}\n'
    with pytest.raises(ConfigError) as raised:
        daemon_config.parse_daemon_json(text, "/etc/docker/daemon.json", "gpu7")
    message = str(raised.value)
    assert "'debug' appears twice" in message
    assert "line 3" in message
    assert "gpu7" in message


@pytest.mark.parametrize(
    ("config", "argv", "undefined"),
    [
        ({"default-runtime": "nvidia"}, ["dockerd"], "nvidia"),
        ({"default-runtime": "nvidia", "runtimes": {"nvidia": {"path": RUNTIME}}}, ["dockerd"],
         None),
        ({"default-runtime": "nvidia"}, ["dockerd", f"--add-runtime=nvidia={RUNTIME}"], None),
        ({}, ["dockerd", "--default-runtime=crun"], "crun"),
        ({"default-runtime": "runc"}, ["dockerd"], None),
        ({}, ["dockerd"], None),
    ],
)
def test_undefined_default_runtime(config, argv, undefined):
    command_line = daemon_config.parse_dockerd_argv(argv)
    assert daemon_config.undefined_default_runtime(config, command_line) == undefined


def test_without_runtime_keys_keeps_other_keys():
    config = {"log-level": "warn", "runtimes": {"nvidia": {"path": RUNTIME}},
              "default-runtime": "nvidia", "x-site": {"a": 1}}
    assert daemon_config.without_runtime_keys(config) == {"log-level": "warn",
                                                         "x-site": {"a": 1}}
    assert "runtimes" in config, "the input mapping must not be modified"
