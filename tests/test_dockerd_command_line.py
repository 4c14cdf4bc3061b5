"""dockerd's command line from systemd unit files, and gpurun's runtime drop-in: pure cases."""

from __future__ import annotations

import pytest

from gpurun.errors import ConfigError
from gpurun.facts import dockerd as dockerd_facts
from gpurun.facts.dockerd import UnitFile
from gpurun.operations import runtime_drop_in

UNIT = "/etc/systemd/system/docker.service"
DROP_IN = "/etc/systemd/system/docker.service.d/nvidia.conf"
BASE = """\
[Unit]
Description=Docker
[Service]
Type=notify
ExecStart=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock
ExecReload=/bin/kill -s HUP $MAINPID
"""


def command_line(files: list[UnitFile], environment: dict[str, str | None] | None = None):
    return dockerd_facts.command_line_from_units("docker.service", files, environment or {})


def test_systemctl_cat_headers():
    text = (f"# {UNIT}\n{BASE}\n# {DROP_IN}\n[Service]\n# /not/a/header.conf\n"
            "ExecStart=\n")
    assert dockerd_facts.parse_systemctl_cat(text, "docker.service") == [UNIT, DROP_IN]


def test_fragment_alone():
    result = command_line([UnitFile(UNIT, BASE)])
    assert result.command_line.argv == [
        "/usr/bin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock"]
    assert result.exec_start_file == UNIT
    assert result.command_line.places("hosts") == UNIT


def test_drop_in_resets_exec_start_and_names_itself():
    drop_in = ("[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// "
               "--add-runtime=nvidia=/usr/bin/nvidia-container-runtime\n")
    result = command_line([UnitFile(UNIT, BASE), UnitFile(DROP_IN, drop_in)])
    assert result.exec_start_file == DROP_IN
    assert result.command_line.runtimes() == {"nvidia": "/usr/bin/nvidia-container-runtime"}
    assert result.command_line.places("runtimes") == DROP_IN
    assert "containerd" not in result.command_line.options


def test_exec_start_in_another_section_is_ignored():
    text = BASE + "[Install]\nExecStart=/bin/false\n"
    assert command_line([UnitFile(UNIT, text)]).command_line.argv[0] == "/usr/bin/dockerd"


def test_continuation_lines_and_prefix():
    text = "[Service]\nExecStart=-/usr/bin/dockerd \\\n    -H fd:// \\\n    --debug\n"
    assert command_line([UnitFile(UNIT, text)]).command_line.argv == [
        "/usr/bin/dockerd", "-H", "fd://", "--debug"]


def test_quoted_argument_with_space_stays_one_word():
    text = '[Service]\nExecStart=/usr/bin/dockerd --label "site=rack 4" --label=b\n'
    result = command_line([UnitFile(UNIT, text)])
    assert result.command_line.options["labels"] == ["site=rack 4", "b"]


def test_environment_file_expands_into_words():
    text = ("[Service]\nEnvironmentFile=-/etc/default/docker\nEnvironment=ROOT=/srv/docker\n"
            "ExecStart=/usr/bin/dockerd $DOCKER_OPTS --data-root=${ROOT}\n")
    environment = {"/etc/default/docker":
                   '# options\nDOCKER_OPTS="--add-runtime=nvidia=/usr/bin/ncr --debug"\n'}
    result = command_line([UnitFile(UNIT, text)], environment)
    assert result.command_line.argv == [
        "/usr/bin/dockerd", "--add-runtime=nvidia=/usr/bin/ncr", "--debug",
        "--data-root=/srv/docker"]
    assert result.command_line.places("runtimes") == "/etc/default/docker"
    assert result.command_line.places("data-root") == UNIT
    assert result.raw_argv == ["/usr/bin/dockerd", "$DOCKER_OPTS", "--data-root=${ROOT}"]
    assert result.environment_files == ["/etc/default/docker"]


def test_missing_environment_file_expands_to_nothing():
    text = ("[Service]\nEnvironmentFile=-/etc/default/docker\n"
            "ExecStart=/usr/bin/dockerd $DOCKER_OPTS -H fd://\n")
    result = command_line([UnitFile(UNIT, text)], {"/etc/default/docker": None})
    assert result.command_line.argv == ["/usr/bin/dockerd", "-H", "fd://"]


def test_environment_file_overrides_environment_line():
    text = ("[Service]\nEnvironment=OPTS=--debug\nEnvironmentFile=/etc/e\n"
            "ExecStart=/usr/bin/dockerd $OPTS\n")
    result = command_line([UnitFile(UNIT, text)], {"/etc/e": "OPTS=--iptables=false\n"})
    assert result.command_line.argv == ["/usr/bin/dockerd", "--iptables=false"]


@pytest.mark.parametrize(
    ("word", "environment", "expanded"),
    [
        ("$A", {"A": "x  y"}, ["x", "y"]),
        ("$A", {}, []),
        ("--x=${A}", {"A": "1 2"}, ["--x=1 2"]),
        ("$$A", {"A": "no"}, ["$A"]),
        ("--cost=$$5", {}, ["--cost=$5"]),
    ],
)
def test_expand_word(word, environment, expanded):
    assert dockerd_facts.expand_word(word, environment)[0] == expanded


def test_unbalanced_quote_names_the_file():
    text = '[Service]\nExecStart=/usr/bin/dockerd --label "a\n'
    with pytest.raises(ConfigError, match=UNIT):
        command_line([UnitFile(UNIT, text)])


def test_no_unit_means_plain_dockerd():
    result = command_line([])
    assert result.command_line.argv == ["dockerd"]
    assert result.exec_start_file is None


@pytest.mark.parametrize(
    "argv",
    [
        ["/usr/bin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock"],
        ["/usr/bin/dockerd", "--label", "site=rack 4", "--label", 'say="hi"', "$DOCKER_OPTS"],
        ["/usr/bin/dockerd", "--data-root=${ROOT}", "--x=a\\b"],
    ],
)
def test_drop_in_round_trip(argv):
    text = runtime_drop_in.render_drop_in(argv + ["--add-runtime=nvidia=/usr/bin/ncr"])
    assert runtime_drop_in.drop_in_argv(text) == argv + ["--add-runtime=nvidia=/usr/bin/ncr"]
    assert "ExecStart=\n" in text, "the drop-in must reset the unit's ExecStart first"


def test_without_runtime_flags():
    argv = ["/usr/bin/dockerd", "-H", "fd://", "--add-runtime", "nvidia=/x",
            "--default-runtime=nvidia", "--add-runtime=crun=/c", "--debug"]
    assert runtime_drop_in.without_runtime_flags(argv) == [
        "/usr/bin/dockerd", "-H", "fd://", "--debug"]


def test_runtime_flags_order():
    flags = runtime_drop_in.runtime_flags({"crun": "/c", "nvidia": "/n"}, "nvidia")
    assert flags == ["--add-runtime=crun=/c", "--add-runtime=nvidia=/n",
                     "--default-runtime=nvidia"]
    assert runtime_drop_in.runtime_flags({"nvidia": "/n"}, None) == ["--add-runtime=nvidia=/n"]
