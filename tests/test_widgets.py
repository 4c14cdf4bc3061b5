"""The JupyterLab controls: the host picker, the Apply button and the interactive check.

The kernel tests start a real ipykernel and send it execute requests as JupyterLab does
(allow_stdin true) and as papermill does (allow_stdin false), so they check the same messages
the two frontends send.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jupyter_client.manager import start_new_kernel

from gpurun.inventory import load_inventory
from gpurun.widgets import is_interactive
from gpurun.widgets.picker import inventory_files, picked_parameters

PROJECT = Path(__file__).resolve().parent.parent

INVENTORY = {
    "all": {
        "vars": {"bundle_dir": "bundles/site", "plan_only": True},
        "hosts": {
            "gpu01": {"ansible_host": "10.0.0.1", "ansible_user": "admin", "ansible_become": True,
                      "unknown_to_preflight": "x"},
            "gpu02": {"ansible_host": "gpu02.example.internal", "ansible_port": 2222,
                      "replace_existing": True},
        },
    }
}


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(INVENTORY))
    return path


# -- pure parts --------------------------------------------------------------------------------

BASE = {"host": "sbx1", "address": "", "port": 22, "user": "root", "key_file": "",
        "become": False, "bundle_dir": "bundles/demo", "plan_only": False,
        "replace_existing": False}


def test_picked_parameters_take_inventory_values(inventory):
    host = load_inventory(inventory)["gpu01"]
    values = picked_parameters(BASE, host, {})
    assert values["host"] == "gpu01"
    assert values["address"] == "10.0.0.1"
    assert values["user"] == "admin"
    assert values["become"] is True
    assert values["bundle_dir"] == "bundles/site"
    assert values["plan_only"] is True
    assert values["replace_existing"] is False


def test_picked_parameters_leave_out_undeclared(inventory):
    host = load_inventory(inventory)["gpu01"]
    values = picked_parameters(BASE, host, {"not_a_parameter": 1})
    assert "unknown_to_preflight" not in values
    assert "not_a_parameter" not in values
    assert set(values) == set(BASE)


def test_picked_parameters_unset_login_goes_to_ssh(inventory):
    """An inventory without ansible_user or ansible_port leaves both to ssh, as Ansible does."""
    host = load_inventory(inventory)["gpu02"]
    values = picked_parameters(BASE, host, {})
    assert values["user"] == ""
    assert values["port"] == 2222
    assert values["key_file"] == ""


def test_picked_parameters_edits_win(inventory):
    host = load_inventory(inventory)["gpu02"]
    values = picked_parameters(BASE, host, {"replace_existing": False, "bundle_dir": "b"})
    assert values["replace_existing"] is False
    assert values["bundle_dir"] == "b"


def test_picked_parameters_without_host():
    assert picked_parameters(BASE, None, {}) == BASE


def test_inventory_files_given_first(tmp_path):
    for name in ("b.yaml", "a.yml", "notes.txt"):
        (tmp_path / name).write_text("")
    given = str(tmp_path / "b.yaml")
    assert inventory_files(tmp_path, given) == [given, str(tmp_path / "a.yml")]
    assert inventory_files(tmp_path, "") == [str(tmp_path / "a.yml"), given]


def test_inventory_files_skip_missing_given(tmp_path):
    (tmp_path / "a.yml").write_text("")
    assert inventory_files(tmp_path, str(tmp_path / "absent.yaml")) == [str(tmp_path / "a.yml")]


def test_not_interactive_outside_kernel():
    assert is_interactive() is False


# -- in a real kernel ---------------------------------------------------------------------------


class Kernel:
    """A real ipykernel, with execute() sending requests as JupyterLab or papermill does."""

    def __init__(self, cwd: Path) -> None:
        self.manager, self.client = start_new_kernel(kernel_name="python3", cwd=str(cwd))

    def execute(self, code: str, *, interactive: bool) -> dict[str, Any]:
        """Run code; return its outputs: 'stdout' text, 'data' bundles and 'error' (or None)."""
        message_id = self.client.execute(textwrap.dedent(code), allow_stdin=interactive)
        result: dict[str, Any] = {"stdout": "", "data": [], "error": None}
        while True:
            message = self.client.get_iopub_msg(timeout=60)
            if message["parent_header"].get("msg_id") != message_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                result["stdout"] += content["text"]
            elif kind in ("display_data", "execute_result"):
                result["data"].append(content["data"])
            elif kind == "error":
                result["error"] = f"{content['ename']}: {content['evalue']}"
            elif kind == "status" and content["execution_state"] == "idle":
                return result

    def value(self, expression: str, *, interactive: bool = True) -> Any:
        """Return the JSON value of an expression evaluated in the kernel."""
        output = self.execute(f"import json; print(json.dumps({expression}))",
                              interactive=interactive)
        assert output["error"] is None, output["error"]
        return json.loads(output["stdout"].strip().splitlines()[-1])

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture
def kernel(tmp_path: Path, inventory: Path) -> Iterator[Kernel]:
    """A kernel running in a project folder with runbooks/ and parameters/site.yaml."""
    (tmp_path / "runbooks").symlink_to(PROJECT / "runbooks")
    (tmp_path / "parameters").mkdir()
    inventory.rename(tmp_path / "parameters" / "site.yaml")
    started = Kernel(tmp_path)
    try:
        yield started
    finally:
        started.close()


def widget_views(output: dict[str, Any]) -> list[dict[str, Any]]:
    return [data for data in output["data"] if "application/vnd.jupyter.widget-view+json" in data]


def test_kernel_interactive_follows_allow_stdin(kernel):
    code = "from gpurun.widgets import is_interactive; print(is_interactive())"
    assert kernel.execute(code, interactive=True)["stdout"].strip() == "True"
    assert kernel.execute(code, interactive=False)["stdout"].strip() == "False"


PARAMETERS = """
    host = "sbx1"
    address = ""
    port = 22
    user = "root"
    key_file = ""
    known_hosts_file = ""
    become = False
    bundle_dir = "bundles/demo"
    plan_only = False
    replace_existing = False
    inventory_file = "parameters/site.yaml"
"""
PICKER = 'from gpurun import widgets\npicker = widgets.host_picker("preflight", inventory_file)'


def test_picker_sets_first_host(kernel):
    kernel.execute(PARAMETERS, interactive=True)
    output = kernel.execute(PICKER, interactive=True)
    assert output["error"] is None
    assert len(widget_views(output)) == 1
    assert kernel.value("[host, address, user, become, bundle_dir]") == [
        "gpu01", "10.0.0.1", "admin", True, "bundles/site"]


def test_picker_follows_host_and_form(kernel):
    kernel.execute(PARAMETERS, interactive=True)
    kernel.execute(PICKER, interactive=True)
    kernel.execute('picker.host.value = "gpu02"', interactive=True)
    assert kernel.value("[host, address, port, user, replace_existing]") == [
        "gpu02", "gpu02.example.internal", 2222, "", True]
    kernel.execute('picker.fields["plan_only"].value = False', interactive=True)
    assert kernel.value("plan_only") is False
    assert kernel.value('picker.fields["bundle_dir"].value') == "bundles/site"


def test_picker_keeps_choice_on_rerun(kernel):
    """Running all cells again runs the parameters cell; the pick and the edits stay."""
    kernel.execute(PARAMETERS, interactive=True)
    kernel.execute(PICKER, interactive=True)
    kernel.execute('picker.host.value = "gpu02"', interactive=True)
    kernel.execute('picker.fields["plan_only"].value = False', interactive=True)
    kernel.execute(PARAMETERS, interactive=True)
    kernel.execute(PICKER, interactive=True)
    assert kernel.value("[host, plan_only]") == ["gpu02", False]
    assert kernel.value("picker.host.value") == "gpu02"


def test_picker_changes_nothing_unattended(kernel):
    kernel.execute(PARAMETERS, interactive=False)
    output = kernel.execute(PICKER, interactive=False)
    assert output["error"] is None
    assert widget_views(output) == []
    assert "parameters cell sets the host" in output["stdout"] + json.dumps(output["data"])
    assert kernel.value("[host, address, picker]", interactive=False) == ["sbx1", "", None]


def test_picker_names_missing_inventory(kernel):
    """A missing inventory is named, and the picker offers the ones in parameters/."""
    kernel.execute(PARAMETERS, interactive=True)
    kernel.execute('inventory_file = "parameters/absent.yaml"', interactive=True)
    output = kernel.execute(PICKER, interactive=True)
    assert output["error"] is None
    assert "parameters/absent.yaml not found" in kernel.value("picker.message.value")
    assert kernel.value("picker.inventory.value") == "parameters/site.yaml"
    assert kernel.value("host") == "gpu01"


def test_picker_without_inventory_keeps_parameters(kernel, tmp_path):
    (tmp_path / "parameters" / "site.yaml").unlink()
    kernel.execute(PARAMETERS, interactive=True)
    output = kernel.execute(PICKER, interactive=True)
    assert output["error"] is None
    message = kernel.value("picker.message.value")
    assert "parameters/site.yaml not found" in message
    assert "gpurun sandbox up" in message
    assert kernel.value("[host, address]") == ["sbx1", ""]


# A step on a local host whose one action writes a file; nothing else touches the machine.
STEP = """
    from pathlib import Path
    from gpurun.host import Host, HostSpec
    from gpurun.plan import Action, unchanged
    from gpurun.step import Step
    from plumbum import local

    marker = Path("applied.txt")
    spec = HostSpec(name="local-test", address="local", port=0, user="root")
    step = Step(name="test-step", host=Host(spec=spec, machine=local, run_id="test"))
    step.show_header({{"auto_apply": {auto_apply}}})
    actions = [Action("applied.txt", "write", "missing", lambda: marker.write_text("done")),
               unchanged("other", "already so")]
"""


def test_apply_waits_for_button(kernel, tmp_path):
    kernel.execute(STEP.format(auto_apply=False), interactive=True)
    output = kernel.execute("outcomes = step.apply(actions)", interactive=True)
    assert output["error"] is None
    assert len(widget_views(output)) == 1
    assert not (tmp_path / "applied.txt").exists()

    early = kernel.execute("step.verify([])", interactive=True)
    assert early["error"] is not None
    assert "not applied yet" in early["error"]
    assert "click Apply" in early["error"]
    assert not (tmp_path / "applied.txt").exists()

    kernel.execute("step._apply_button.click()", interactive=True)
    assert (tmp_path / "applied.txt").read_text() == "done"
    assert kernel.value("step._apply_button.state") == "applied"
    after = kernel.execute("step.verify([])", interactive=True)
    assert after["error"] is None
    shown = json.dumps(after["data"])
    assert "applied with the Apply button" in shown
    assert kernel.value("[o.status for o in step.outcomes]") == ["changed", "unchanged"]


def test_apply_button_failure_stops_verify(kernel, tmp_path):
    kernel.execute(STEP.format(auto_apply=False), interactive=True)
    kernel.execute("from gpurun.errors import GpurunError\n"
                   "def fail(): raise GpurunError('disk full on local-test')\n"
                   "actions[0].apply = fail", interactive=True)
    kernel.execute("outcomes = step.apply(actions)", interactive=True)
    kernel.execute("step._apply_button.click()", interactive=True)
    assert kernel.value("step._apply_button.state") == "failed"
    verify = kernel.execute("step.verify([])", interactive=True)
    assert "disk full on local-test" in verify["error"]
    assert "run the notebook again from the top" in verify["error"]


def test_apply_replaced_button_is_disabled(kernel):
    kernel.execute(STEP.format(auto_apply=False), interactive=True)
    kernel.execute("step.apply(actions)\nfirst = step._apply_button", interactive=True)
    kernel.execute("outcomes = step.apply(actions)", interactive=True)
    assert kernel.value("[first.state, first.button.disabled]") == ["replaced", True]
    assert kernel.value("step._apply_button.state") == "waiting"


def test_auto_apply_applies_at_once(kernel, tmp_path):
    kernel.execute(STEP.format(auto_apply=True), interactive=True)
    output = kernel.execute("outcomes = step.apply(actions)", interactive=True)
    assert output["error"] is None
    assert (tmp_path / "applied.txt").read_text() == "done"
    assert kernel.value("step._apply_button") is None


def test_unattended_apply_shows_no_widgets(kernel, tmp_path):
    kernel.execute(STEP.format(auto_apply=False), interactive=False)
    output = kernel.execute("outcomes = step.apply(actions)", interactive=False)
    assert output["error"] is None
    assert widget_views(output) == []
    assert (tmp_path / "applied.txt").read_text() == "done"
    titles = [data.get("text/plain", "").splitlines()[0] for data in output["data"]]
    assert titles == ["Plan", "Outcome"]
    finished = kernel.execute("summary = step.finish()", interactive=False)
    assert finished["error"] is None


def test_header_names_the_mode(kernel):
    kernel.execute(STEP.format(auto_apply=False), interactive=True)
    assert kernel.value("step.parameters") == {"auto_apply": False}
    output = kernel.execute("step.show_header({})", interactive=True)
    assert "apply after a click on Apply" in json.dumps(output["data"])
    output = kernel.execute("step.show_header({})", interactive=False)
    assert "apply after a click" not in json.dumps(output["data"])
