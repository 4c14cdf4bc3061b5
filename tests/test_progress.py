"""The progress display and the summary table, read from run.json files as the runner writes
them."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from gpurun.progress import (
    HostState,
    StepState,
    TerminalProgress,
    WidgetProgress,
    failure_lines,
    html_table,
    read_states,
    summary_lines,
    text_table,
)
from gpurun.runner import HostRun, StepRecord

STEPS = ["preflight", "docker-binaries", "docker-service"]
RUN_ID = "20260101-000000-abcd"


def stamp(seconds_ago: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds_ago))


def write_run(outputs: Path, host: str, **record) -> None:
    folder = outputs / host / RUN_ID
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps({"host": host, "run_id": RUN_ID, **record}))


def fleet(outputs: Path) -> None:
    write_run(outputs, "gpu1", status="running", plan_only=False, started=stamp(30), steps=[
        {"name": "preflight", "status": "completed", "seconds": 4.2, "changed": False},
        {"name": "docker-binaries", "status": "running", "seconds": 0, "started": stamp(12)},
    ])
    write_run(outputs, "gpu2", status="failed", plan_only=False, started=stamp(30),
              ended=stamp(27), reason="connect: no route to host", steps=[])


def test_states_from_run_json(tmp_path):
    fleet(tmp_path)
    gpu1, gpu2, gpu3 = read_states(tmp_path, RUN_ID, ["gpu1", "gpu2", "gpu3"])
    assert gpu1.status == "running"
    assert gpu1.cell("preflight") == "ok 4s"
    assert gpu1.cell("docker-binaries").startswith("running 1")
    assert gpu1.cell("docker-service") == "-"
    assert gpu2.status == "failed"
    assert gpu2.reason == "connect: no route to host"
    assert 2 <= gpu2.seconds <= 4
    assert gpu3.status == "waiting"


def test_plan_cells_count_changes():
    state = HostState("gpu1", status="completed", plan_only=True)
    state.steps["preflight"] = StepState("completed", 2.0, False, 3)
    assert state.cell("preflight") == "plan 3 2s"


def test_text_table_has_row_per_host(tmp_path):
    fleet(tmp_path)
    lines = text_table(read_states(tmp_path, RUN_ID, ["gpu1", "gpu2"]), STEPS)
    assert lines[0].split() == ["host", *STEPS, "status"]
    assert lines[1].startswith("gpu1")
    assert lines[2].startswith("gpu2")
    assert lines[2].endswith("failed: connect: no route to host")


def test_html_table_escapes_and_colors(tmp_path):
    fleet(tmp_path)
    states = read_states(tmp_path, RUN_ID, ["gpu1", "gpu2"])
    states[1].reason = "<b>bad</b>"
    page = html_table("run", states, STEPS)
    assert "&lt;b&gt;bad&lt;/b&gt;" in page
    assert "<b>bad</b>" not in page
    assert 'style="color:#1a7f37">ok 4s' in page


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_redraws_in_place(tmp_path):
    fleet(tmp_path)
    stream = FakeTerminal()
    display = TerminalProgress(tmp_path, RUN_ID, ["gpu1", "gpu2"], STEPS, stream=stream)
    states = read_states(tmp_path, RUN_ID, ["gpu1", "gpu2"])
    display.show(states, final=False)
    display.show(states, final=True)
    output = stream.getvalue()
    assert output.count("\x1b[4F\x1b[J") == 1  # moved up over title, header and two hosts
    assert output.count("run 20260101-000000-abcd: 1/2 hosts finished, 1 failed") == 2


def test_log_lines_without_terminal(tmp_path):
    fleet(tmp_path)
    stream = io.StringIO()
    display = TerminalProgress(tmp_path, RUN_ID, ["gpu1", "gpu2"], STEPS, stream=stream)
    display.start()
    display.stop()
    lines = stream.getvalue().splitlines()
    assert "gpu1  preflight  ok 4s" in lines
    assert "gpu2  failed: connect: no route to host" in lines
    assert len(lines) == len(set(lines))  # each change printed once


def test_widget_shows_table(tmp_path):
    fleet(tmp_path)
    display = WidgetProgress(tmp_path, RUN_ID, ["gpu1", "gpu2"], STEPS)
    display.show(read_states(tmp_path, RUN_ID, ["gpu1", "gpu2"]), final=True)
    assert "gpu2" in display.widget.value
    assert "no route to host" in display.widget.value


def test_summary_lines(tmp_path):
    ok = HostRun("gpu1", RUN_ID, False, stamp(40), status="completed", seconds=38.5,
                 requested_steps=STEPS,
                 steps=[StepRecord("01", name, "completed", name != "preflight", 0, 3.0,
                                   f"{name}.ipynb", uploaded_bytes=2**20 * (name == STEPS[1]))
                        for name in STEPS])
    failed = HostRun("gpu2", RUN_ID, False, stamp(40), status="failed", seconds=3.1,
                     requested_steps=STEPS, reason="connect: no route to host")
    lines = summary_lines([ok, failed], tmp_path)
    assert lines[0].split() == ["host", "status", "seconds", "steps", "changed", "uploaded",
                                "reason"]
    assert lines[1].split() == ["gpu1", "completed", "38.5", "3/3", "2", "1", "MiB", "-"]
    assert lines[2].split()[:6] == ["gpu2", "failed", "3.1", "0/3", "0", "0"]
    assert lines[2].endswith("connect: no route to host")
    assert lines[3].startswith("1 of 2 hosts succeeded")


def test_failure_lines_give_next_step_and_record(tmp_path):
    error = ("ConnectionFailed: lost the connection to host gpu2 while running `tar -xzf x`\n"
             "  next step: check that the host is up, then run the step again")
    failed = HostRun("gpu2", RUN_ID, False, stamp(40), status="failed", seconds=9.0,
                     requested_steps=STEPS, failed_step=STEPS[1],
                     reason=f"step {STEPS[1]} failed: lost the connection to host gpu2",
                     steps=[StepRecord("02", STEPS[1], "failed", None, 0, 5.0,
                                       f"02-{STEPS[1]}.ipynb", error=error)])
    ok = HostRun("gpu1", RUN_ID, False, stamp(40), status="completed", seconds=8.0)

    lines = failure_lines([ok, failed], tmp_path)

    assert lines == [
        f"gpu2: step {STEPS[1]} failed: lost the connection to host gpu2",
        "  next step: check that the host is up, then run the step again",
        f"  record: {tmp_path}/gpu2/{RUN_ID}/02-{STEPS[1]}.ipynb",
    ]


def test_notebook_run_shows_widget(tmp_path):
    # A real kernel runs gpurun.fleet.run from a notebook cell, as in JupyterLab. Two hosts on
    # a closed loopback port fail at once, in two worker processes.
    import nbformat
    from nbclient import NotebookClient

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "all:\n  vars:\n    ansible_host: 127.0.0.1\n    ansible_port: 1\n"
        "    ansible_user: root\n  hosts:\n    closed1:\n    closed2:\n")
    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(nbformat.v4.new_code_cell(
        "from gpurun import fleet\n"
        f"records = fleet.run({str(inventory)!r}, outputs={str(tmp_path / 'outputs')!r}, "
        "parallel=2)\n"
        "print([record.reason for record in records])"))
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(Path.cwd())}}).execute()

    outputs = notebook.cells[0].outputs
    kinds = [kind for output in outputs for kind in output.get("data", {})]
    assert "application/vnd.jupyter.widget-view+json" in kinds
    summary = "".join(output["data"]["text/html"] for output in outputs
                      if "text/html" in output.get("data", {}))
    assert "0 of 2 hosts succeeded" in summary
    printed = "".join(output.get("text", "") for output in outputs)
    assert printed.count("connect: connection refused") == 2
