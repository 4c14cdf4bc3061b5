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
        # Switching back to runc drops nvidia as the default but keeps it registered.
        ({"runtimes": {"nvidia": {"path": RUNTIME}}, "default-runtime": "nvidia"}, False,
         {"runtimes": {"nvidia": {"path": RUNTIME}}}),
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
