"""The runtime step's change on its input: facts about a host to the files it would write."""

from __future__ import annotations

import json

import pytest

from gpurun.errors import ConfigError
from gpurun.facts import dockerd as dockerd_facts
from gpurun.facts.dockerd import UnitFile
from gpurun.operations import runtime_drop_in
from gpurun.steps import runtime as runtime_step

RUNTIME = "/usr/bin/nvidia-container-runtime"
UNIT = "/etc/systemd/system/docker.service"
UNIT_TEXT = ("[Service]\nExecStart=/usr/bin/dockerd -H fd:// "
             "--containerd=/run/containerd/containerd.sock\n")


def facts(config: dict | None, drop_in: str | None = None) -> runtime_step.RuntimeFacts:
    base = dockerd_facts.command_line_from_units("docker.service", [UnitFile(UNIT, UNIT_TEXT)],
                                                 {})
    files = [UnitFile(UNIT, UNIT_TEXT)]
    if drop_in is not None:
        files.append(UnitFile(runtime_drop_in.DROP_IN_PATH, drop_in))
    service = dockerd_facts.command_line_from_units("docker.service", files, {})
    text = None if config is None else json.dumps(config, indent=4) + "\n"
    return runtime_step.RuntimeFacts(
        init_system="systemd", service=service, base=base,
        config_path="/etc/docker/daemon.json", config_text=text, config=config or {},
        drop_in_text=drop_in, runtime_path=RUNTIME, dockerd="/usr/bin/dockerd", info=None)


def after(change) -> tuple[dict, list[str]]:
    """Return daemon.json and the drop-in's ExecStart after the change."""
    config = json.loads(change.config_after) if change.config_after else {}
    return config, runtime_drop_in.drop_in_argv(change.drop_in_after)


def test_daemon_json_way_merges():
    change = runtime_step._daemon_json_change(facts({"log-level": "warn"}), set_default=True)
    config, argv = after(change)
    assert config == {"log-level": "warn", "runtimes": {"nvidia": {"path": RUNTIME}},
                      "default-runtime": "nvidia"}
    assert argv == []
    assert change.target.default == "nvidia"


def test_missing_daemon_json_is_created():
    change = runtime_step._daemon_json_change(facts(None), set_default=False)
    assert change.config_before is None
    assert after(change)[0] == {"runtimes": {"nvidia": {"path": RUNTIME}}}
    assert change.target.default == "runc"


def test_flags_way_moves_every_runtime():
    config = {"log-level": "warn", "default-runtime": "nvidia",
              "runtimes": {"nvidia": {"path": RUNTIME}, "crun": {"path": "/usr/bin/crun"}}}
    change = runtime_step._flags_change("gpu7", facts(config), set_default=True)
    config_after, argv = after(change)
    assert config_after == {"log-level": "warn"}
    assert argv == ["/usr/bin/dockerd", "-H", "fd://",
                    "--containerd=/run/containerd/containerd.sock",
                    "--add-runtime=crun=/usr/bin/crun", f"--add-runtime=nvidia={RUNTIME}",
                    "--default-runtime=nvidia"]
    assert change.command_line_after.runtimes() == {"crun": "/usr/bin/crun", "nvidia": RUNTIME}


def test_flags_way_twice_changes_nothing():
    config = {"runtimes": {"nvidia": {"path": RUNTIME}, "crun": {"path": "/usr/bin/crun"}},
              "log-level": "warn"}
    first = runtime_step._flags_change("gpu7", facts(config), set_default=True)
    config_after, _ = after(first)
    second = runtime_step._flags_change(
        "gpu7", facts(config_after, first.drop_in_after), set_default=True)
    assert not second.config_changes
    assert not second.drop_in_changes


def test_flags_back_to_daemon_json_restores_runtimes():
    config = {"runtimes": {"crun": {"path": "/usr/bin/crun"}}, "default-runtime": "crun"}
    to_flags = runtime_step._flags_change("gpu7", facts(config), set_default=False)
    assert "--default-runtime=crun" in after(to_flags)[1]
    assert to_flags.target.default == "crun"

    back = runtime_step._daemon_json_change(
        facts(after(to_flags)[0], to_flags.drop_in_after), set_default=False)
    config_after, argv = after(back)
    assert back.drop_in_after is None
    assert config_after == {"runtimes": {"crun": {"path": "/usr/bin/crun"},
                                         "nvidia": {"path": RUNTIME}},
                            "default-runtime": "crun"}
    assert argv == []


def test_flags_way_rejects_runtime_arguments():
    config = {"runtimes": {"nvidia": {"path": RUNTIME, "runtimeArgs": ["--debug"]}}}
    with pytest.raises(ConfigError) as raised:
        runtime_step._flags_change("gpu7", facts(config), set_default=True)
    message = str(raised.value)
    assert "'nvidia'" in message
    assert "gpu7" in message
    assert "runtimeArgs" in message


def test_unchanged_daemon_json_keeps_its_text():
    text_config = {"runtimes": {"nvidia": {"path": RUNTIME}}, "default-runtime": "nvidia"}
    host_facts = facts(text_config)
    # The operator's own layout: gpurun must not reformat a file it does not change.
    host_facts.config_text = (f'{{"runtimes": {{"nvidia": {{"path": "{RUNTIME}"}}}},\n'
                              f' "default-runtime": "nvidia"}}\n')
    change = runtime_step._daemon_json_change(host_facts, set_default=True)
    assert change.config_after == host_facts.config_text
    assert not change.config_changes
