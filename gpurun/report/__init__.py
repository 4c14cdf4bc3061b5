"""The fleet report: every run under an outputs folder, with each notebook rendered as HTML."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from gpurun.errors import GpurunError
from gpurun.records import run_folders
from gpurun.report.index import render_index
from gpurun.report.render import offline_exporter, render_notebook
from gpurun.report.runs import RunRow, read_runs

log = logging.getLogger("gpurun.report")

INDEX_NAME = "index.html"


@dataclass
class Report:
    """What `write_report` wrote: the index page and the runs it lists."""

    index: Path
    runs: list[RunRow]
    rendered: int


def write_report(outputs: Path) -> Report:
    """Render every executed notebook under outputs as HTML and write outputs/index.html."""
    if not outputs.is_dir():
        raise GpurunError(
            f"outputs folder {outputs} not found: give the folder that `gpurun run --outputs` "
            f"wrote (default: outputs)"
        )
    rows = read_runs(outputs)
    exporter = offline_exporter()
    rendered = 0
    for row in rows:
        for step in row.steps.values():
            if step.notebook.suffix != ".ipynb":
                continue  # a step --resume skipped: its notebook is in the earlier run
            if not step.notebook.is_file():
                log.warning("%s: notebook %s named in run.json is missing", row.host,
                            step.notebook)
                continue
            render_notebook(step.notebook, exporter)
            rendered += 1

    unreadable = len(run_folders(outputs)) - len(rows)
    index = outputs / INDEX_NAME
    temporary = outputs / f".{INDEX_NAME}.tmp"
    temporary.write_text(render_index(rows, outputs, unreadable), encoding="utf-8")
    temporary.replace(index)
    log.debug("wrote %s: %d run(s), %d notebook(s)", index, len(rows), rendered)
    return Report(index=index, runs=rows, rendered=rendered)
