"""The record of a run: outputs manifest, tamper check, fleet report, and what notebooks show.

The first tests build run folders by hand, with real notebooks and real nbconvert. The sandbox
tests read the records of two hosts that went through the main job.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from chain import GPURUN, PROJECT
from fleet import recorded_fleet
from nbformat.v4 import new_code_cell, new_notebook, new_output

from gpurun.records import MANIFEST_NAME, check_outputs, check_run_folder, write_manifest
from gpurun.report import write_report
from gpurun.report.runs import read_runs
from gpurun.step import SUMMARY_MIME


def make_run(outputs: Path, host: str, run_id: str, started: str,
             steps: list[tuple[str, str, bool]], plan_only: bool = False) -> Path:
    """Write a run folder as the runner does: notebooks, run.json, then the manifest."""
    folder = outputs / host / run_id
    folder.mkdir(parents=True)
    records = []
    for number, (name, status, changed) in enumerate(steps, 1):
        notebook = new_notebook()
        summary = {"step": name, "host": host, "changed": changed}
        notebook.cells.append(new_code_cell("step.finish()", outputs=[new_output(
            "display_data", data={SUMMARY_MIME: summary, "text/plain": f"{name} done"})]))
        notebook_name = f"{number:02d}-{name}.ipynb"
        nbformat.write(notebook, folder / notebook_name)
        records.append({"number": f"{number:02d}", "name": name, "status": status,
                        "changed": changed, "planned_changes": 0, "seconds": 1.5,
                        "notebook": notebook_name, "error": "" if status == "completed"
                        else "GpurunError: the step failed"})
    run_status = "completed" if all(s == "completed" for _, s, _ in steps) else "failed"
    (folder / "run.json").write_text(json.dumps({
        "host": host, "run_id": run_id, "plan_only": plan_only, "started": started,
        "ended": started, "status": run_status, "steps": records}))
    write_manifest(folder)
    return folder


def gpurun_report(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `gpurun report ARGS` as an operator would and return the finished process."""
    return subprocess.run([*GPURUN, "report", *args], cwd=PROJECT, capture_output=True,
                          text=True, timeout=600, check=False)


def edit_notebook(notebook: Path) -> None:
    """Change one cell's source, as a person editing the record by hand would."""
    node = nbformat.read(str(notebook), as_version=4)
    node.cells[0].source += "\n# edited"
    nbformat.write(node, str(notebook))


def test_manifest_lists_records(tmp_path):
    folder = make_run(tmp_path, "gpu1", "run-a", "2026-01-01T00:00:00Z",
                      [("preflight", "completed", False), ("runtime", "completed", True)])
    names = [line.split("  ")[1] for line in (folder / MANIFEST_NAME).read_text().splitlines()]
    assert names == ["01-preflight.ipynb", "02-runtime.ipynb", "run.json"]
    assert check_run_folder(folder) == []


def test_manifest_checks_with_sha256sum(tmp_path):
    folder = make_run(tmp_path, "gpu1", "run-a", "2026-01-01T00:00:00Z",
                      [("preflight", "completed", False)])
    make_run(tmp_path, "gpu1", "run-b", "2026-01-02T00:00:00Z",
             [("preflight", "completed", False)])
    result = subprocess.run(["sha256sum", "--strict", "-c", MANIFEST_NAME],
                            cwd=tmp_path / "gpu1" / "run-b", capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"../run-a/{MANIFEST_NAME}: OK" in result.stdout
    assert folder.exists()


def test_check_names_edited_notebook(tmp_path):
    folder = make_run(tmp_path, "gpu1", "run-a", "2026-01-01T00:00:00Z",
                      [("preflight", "completed", False), ("runtime", "completed", True)])
    edit_notebook(folder / "02-runtime.ipynb")
    problems = check_outputs(tmp_path)
    assert [(p.name, p.problem) for p in problems] == [("02-runtime.ipynb",
                                                         "edited after the run")]
    assert problems[0].describe(tmp_path) == "gpu1/run-a/02-runtime.ipynb: edited after the run"


def test_check_names_removed_and_added(tmp_path):
    folder = make_run(tmp_path, "gpu1", "run-a", "2026-01-01T00:00:00Z",
                      [("preflight", "completed", False), ("runtime", "completed", True)])
    (folder / "01-preflight.ipynb").unlink()
    shutil.copy(folder / "02-runtime.ipynb", folder / "03-extra.ipynb")
    problems = {(p.name, p.problem) for p in check_outputs(tmp_path)}
    assert ("01-preflight.ipynb", "listed file is missing") in problems
    assert ("03-extra.ipynb", "added after the run") in problems
    assert len(problems) == 2


def test_check_ignores_rendered_html(tmp_path):
    folder = make_run(tmp_path, "gpu1", "run-a", "2026-01-01T00:00:00Z",
                      [("preflight", "completed", False)])
    write_report(tmp_path)
    assert (folder / "01-preflight.html").exists()
    assert check_outputs(tmp_path) == []


def test_chain_shows_edited_manifest(tmp_path):
    first = make_run(tmp_path, "gpu1", "run-a", "2026-01-01T00:00:00Z",
                     [("runtime", "completed", True)])
    make_run(tmp_path, "gpu1", "run-b", "2026-01-02T00:00:00Z",
             [("runtime", "completed", False)])
    # Edit a notebook and rewrite its manifest to match, which the chain still shows.
    edit_notebook(first / "01-runtime.ipynb")
    write_manifest(first)
    problems = check_outputs(tmp_path)
    assert [(p.folder.name, p.name) for p in problems] == [("run-b", f"../run-a/{MANIFEST_NAME}")]
    assert "edited" in problems[0].problem


def test_check_reports_missing_manifest(tmp_path):
    folder = make_run(tmp_path, "gpu1", "run-a", "2026-01-01T00:00:00Z",
                      [("preflight", "completed", False)])
    (folder / MANIFEST_NAME).unlink()
    problems = check_outputs(tmp_path)
    assert [p.name for p in problems] == [MANIFEST_NAME]
    assert problems[0].problem.startswith("missing")


def test_report_check_cli_exit_status(tmp_path):
    folder = make_run(tmp_path, "gpu1", "run-a", "2026-01-01T00:00:00Z",
                      [("preflight", "completed", False)])
    clean = gpurun_report("--check", str(tmp_path))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "match their manifests" in clean.stdout
    edit_notebook(folder / "01-preflight.ipynb")
    edited = gpurun_report("--check", str(tmp_path))
    assert edited.returncode == 1
    assert "gpu1/run-a/01-preflight.ipynb: edited after the run" in edited.stdout


def test_report_rejects_missing_folder(tmp_path):
    result = gpurun_report(str(tmp_path / "nothing"))
    assert result.returncode == 2
    assert "not found" in result.stderr


def test_index_rows_newest_first(tmp_path):
    make_run(tmp_path, "gpu1", "run-a", "2026-01-01T00:00:00Z", [("preflight", "completed", False)])
    make_run(tmp_path, "gpu2", "run-a", "2026-01-01T00:00:00Z", [("preflight", "failed", False)])
    make_run(tmp_path, "gpu1", "run-c", "2026-01-03T00:00:00Z", [("preflight", "completed", True)])
    rows = [(row.host, row.run_id) for row in read_runs(tmp_path)]
    assert rows == [("gpu1", "run-c"), ("gpu1", "run-a"), ("gpu2", "run-a")]


def test_index_cells_link_rendered_notebooks(tmp_path):
    make_run(tmp_path, "gpu1", "run-a", "2026-01-01T00:00:00Z",
             [("preflight", "completed", False), ("runtime", "failed", False)])
    report = write_report(tmp_path)
    page = report.index.read_text()
    links = re.findall(r"href='([^']+)'", page)
    assert links == ["gpu1/run-a/01-preflight.html", "gpu1/run-a/02-runtime.html"]
    for link in links:
        assert (tmp_path / link).is_file(), link
    assert "unchanged" in page
    assert "GpurunError: the step failed" in page
    assert "data-status='failed'" in page


def test_resumed_run_skipped_steps_not_missing(tmp_path, caplog):
    folder = make_run(tmp_path, "gpu1", "run-b", "2026-01-01T00:00:00Z",
                      [("runtime", "completed", True)])
    record = json.loads((folder / "run.json").read_text())
    # --resume records the steps it skipped without a notebook of their own.
    record["steps"].insert(0, {"number": "01", "name": "preflight", "status": "skipped",
                               "changed": False, "planned_changes": 0, "seconds": 0.0,
                               "notebook": "", "completed_in": "run-a"})
    (folder / "run.json").write_text(json.dumps(record))
    write_manifest(folder)

    report = write_report(tmp_path)

    assert "missing" not in caplog.text
    assert report.rendered == 1


def test_rendered_notebook_needs_no_network(tmp_path):
    make_run(tmp_path, "gpu1", "run-a", "2026-01-01T00:00:00Z", [("preflight", "completed", False)])
    write_report(tmp_path)
    rendered = (tmp_path / "gpu1" / "run-a" / "01-preflight.html").read_text()
    assert "preflight done" in rendered
    assert re.findall(r"""(?:src|href)=["']https?://""", rendered) == []


def test_index_marks_edited_record(tmp_path):
    folder = make_run(tmp_path, "gpu1", "run-a", "2026-01-01T00:00:00Z",
                      [("preflight", "completed", False)])
    edit_notebook(folder / "01-preflight.ipynb")
    page = write_report(tmp_path).index.read_text()
    assert "class='record-edited'" in page
    assert "edited after the run" in page


# -- the records of a real fleet ----------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet(sandbox_hosts, demo_bundle, tmp_path_factory):
    return recorded_fleet(sandbox_hosts, demo_bundle, tmp_path_factory.mktemp("fleet"))


def notebook_text(notebook: Path) -> str:
    """Return every cell source and text output of a notebook, joined."""
    node = nbformat.read(str(notebook), as_version=4)
    parts = []
    for cell in node.cells:
        parts.append(cell.source)
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
            parts.append(output.get("data", {}).get("text/html", ""))
    return "\n".join(parts)


@pytest.mark.sandbox
def test_index_lists_both_hosts(fleet):
    first, second = (host.name for host in fleet.hosts)
    rows = read_runs(fleet.outputs)
    listed = [(row.host, row.run_id) for row in rows]
    # Newest first: the two short runs, then the main job of both hosts in either order.
    assert listed[:2] == [(first, fleet.failed_run_id), (first, fleet.second_run_id)]
    assert sorted(listed[2:]) == sorted([(first, fleet.first_run_id),
                                         (second, fleet.first_run_id)])
    assert [row.status for row in rows] == ["failed", "completed", "completed", "completed"]
    assert all(row.record_state == "intact" for row in rows)
    assert rows[1].steps["docker-binaries"].result == "unchanged"
    main_job = next(row for row in rows if row.run_id == fleet.first_run_id)
    assert main_job.steps["docker-binaries"].result == "changed"


@pytest.mark.sandbox
def test_notebook_shows_runtime_record(fleet):
    host = fleet.hosts[1]
    text = notebook_text(fleet.outputs / host.name / fleet.first_run_id / "05-runtime.ipynb")
    assert "Parameters" in text
    assert "Facts" in text
    assert "Plan" in text
    assert "Outcome" in text
    assert "Verification" in text
    assert "+++ b/etc/docker/daemon.json" in text
    assert '"default-runtime": "nvidia"' in text
    assert re.search(r"\[0\] sudo ", text), "commands through sudo show their exit code"
    assert "ssh user" in text
    assert host.user in text
    assert "control node" in text


@pytest.mark.sandbox
def test_notebook_shows_binary_checksums(fleet):
    folder = fleet.outputs / fleet.hosts[0].name / fleet.first_run_id
    text = notebook_text(folder / "02-docker-binaries.ipynb")
    record = json.loads((folder / "run.json").read_text())
    [binaries] = [s for s in record["steps"] if s["name"] == "docker-binaries"]
    dockerd = [c for c in binaries["file_changes"] if c["path"] == "/usr/bin/dockerd"]
    assert len(dockerd) == 1
    assert dockerd[0]["sha256_after"] in text
    assert dockerd[0]["version_after"] and dockerd[0]["version_after"] in text


@pytest.mark.sandbox
def test_run_json_keeps_summary(fleet):
    host = fleet.hosts[1]
    record = json.loads((fleet.outputs / host.name / fleet.first_run_id / "run.json").read_text())
    for step in record["steps"]:
        assert step["operator"]["ssh_user"] == host.user, step["name"]
        assert step["operator"]["control_node"], step["name"]
        # Preflight only reads and judges facts: it plans and verifies nothing.
        if step["name"] != "preflight":
            assert step["outcomes"], step["name"]
            assert step["checks"], step["name"]
    changed = {c["path"] for s in record["steps"] for c in s["file_changes"]}
    assert "/etc/docker/daemon.json" in changed
    assert "unit docker.service" in changed
    assert "group docker" in changed


@pytest.mark.sandbox
def test_host_journal_matches_outputs(fleet, sandbox_hosts):
    for host in fleet.hosts:
        record = json.loads(
            (fleet.outputs / host.name / fleet.first_run_id / "run.json").read_text())
        recorded = [(c["path"], c["action"], c["sha256_before"], c["sha256_after"])
                    for s in record["steps"] for c in s["file_changes"]]
        # The journal is world-readable, so the sudo user's login can read it too.
        journal = sandbox_hosts.run(
            host, ["cat", f"/var/lib/gpurun/runs/{fleet.first_run_id}/changes.jsonl"])
        assert journal.returncode == 0, journal.stderr
        entries = [json.loads(line) for line in journal.stdout.splitlines()]
        on_host = [(e["path"], e["action"], e["sha256_before"], e["sha256_after"])
                   for e in entries]
        assert on_host == recorded, host.name


@pytest.mark.sandbox
def test_report_check_names_hand_edit(fleet, tmp_path):
    copy = tmp_path / "outputs"
    shutil.copytree(fleet.outputs, copy)
    clean = gpurun_report("--check", str(copy))
    assert clean.returncode == 0, clean.stdout + clean.stderr

    host = fleet.hosts[0].name
    edit_notebook(copy / host / fleet.first_run_id / "04-nvidia-toolkit.ipynb")
    edited = gpurun_report("--check", str(copy))
    assert edited.returncode == 1
    assert edited.stdout.splitlines() == [
        f"{host}/{fleet.first_run_id}/04-nvidia-toolkit.ipynb: edited after the run"]
