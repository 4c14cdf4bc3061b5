"""Write outputs/index.html: one row per host and run, one column per step.

The page is a single file with its style and its filter script inline, so it opens from disk
on a control node without network access. Links are relative, so the outputs folder can be
copied or archived whole.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

from gpurun.report.runs import ROLLBACK_STEP, RunRow, StepCell
from gpurun.steps import STEP_NAMES

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f0f0f0; }
td.step a { text-decoration: none; color: inherit; display: block; }
td.step .detail { color: #555; font-size: 0.85em; }
.completed { background: #e7f4e7; }
.failed { background: #fbe3e3; }
.running { background: #fff4d6; }
.edited { outline: 2px solid #a00000; }
.record-edited, .record-no-manifest { color: #a00000; font-weight: bold; }
.filters { margin: 1em 0; }
.filters label { margin-right: 1.5em; }
"""

FILTER_SCRIPT = """
function applyFilters() {
  const host = document.getElementById('host-filter').value;
  const status = document.getElementById('status-filter').value;
  let shown = 0;
  for (const row of document.querySelectorAll('#runs tbody tr')) {
    const visible = (host === '' || row.dataset.host === host) &&
                    (status === '' || row.dataset.status === status);
    row.hidden = !visible;
    if (visible) shown += 1;
  }
  document.getElementById('shown').textContent = shown;
}
document.getElementById('host-filter').addEventListener('change', applyFilters);
document.getElementById('status-filter').addEventListener('change', applyFilters);
applyFilters();
"""


def step_columns(rows: list[RunRow]) -> list[str]:
    """Return the steps that any run has, in run order, the rollback and unknown ones last."""
    present = {name for row in rows for name in row.steps}
    known = [name for name in [*STEP_NAMES, ROLLBACK_STEP] if name in present]
    return known + sorted(present - set(known))


def render_index(rows: list[RunRow], outputs: Path, unreadable: int = 0) -> str:
    """Return the report page for the given runs (already sorted newest first)."""
    columns = step_columns(rows)
    hosts = sorted({row.host for row in rows})
    statuses = sorted({row.status for row in rows})
    header = "".join(f"<th>{html.escape(name)}</th>" for name in
                     ["host", "run", "kind", "started (UTC)", "status", "record", *columns])
    body = "\n".join(_row(row, columns, outputs) for row in rows)
    note = (f"<p class='record-edited'>{unreadable} run folder(s) have no readable run.json; "
            f"`gpurun report --check` lists them.</p>" if unreadable else "")
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>gpurun runs</title>
<style>{STYLE}</style>
</head>
<body>
<h1>gpurun runs</h1>
<p>{len(rows)} run(s) on {len(hosts)} host(s), newest first. Generated {generated}.
Each cell links to the executed notebook of that step, rendered as HTML. The record column
compares each run folder with its SHA256SUMS manifest.</p>
{note}
<div class="filters">
<label>Host {_select("host-filter", hosts, "all hosts")}</label>
<label>Status {_select("status-filter", statuses, "all statuses")}</label>
<span><span id="shown">{len(rows)}</span> shown</span>
</div>
<table id="runs">
<thead><tr>{header}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<script>{FILTER_SCRIPT}</script>
</body>
</html>
"""


def _select(element_id: str, values: list[str], everything: str) -> str:
    options = "".join(f"<option value='{html.escape(v, quote=True)}'>{html.escape(v)}</option>"
                      for v in values)
    return f"<select id='{element_id}'><option value=''>{everything}</option>{options}</select>"


def _row(row: RunRow, columns: list[str], outputs: Path) -> str:
    record = row.record_state
    problems = html.escape("\n".join(problem.describe(outputs) for problem in row.problems),
                           quote=True)
    record_cell = (f"<td class='record-{record.replace(' ', '-')}' title='{problems}'>"
                   f"{html.escape(record)}</td>")
    cells = [
        f"<td>{html.escape(row.host)}</td>",
        f"<td><code>{html.escape(row.run_id)}</code></td>",
        f"<td>{html.escape(row.kind)}</td>",
        f"<td>{html.escape(row.started.replace('T', ' ').rstrip('Z'))}</td>",
        f"<td class='{html.escape(row.status)}'>{html.escape(row.status)}</td>",
        record_cell,
    ]
    for name in columns:
        step = row.steps.get(name)
        cells.append(_step_cell(step, outputs) if step else "<td class='not-run'>-</td>")
    return (f"<tr data-host='{html.escape(row.host, quote=True)}' "
            f"data-status='{html.escape(row.status, quote=True)}'>{''.join(cells)}</tr>")


def _step_cell(step: StepCell, outputs: Path) -> str:
    edited = " edited" if step.edited else ""
    text = (f"<b>{html.escape(step.status)}</b><br>"
            f"<span class='detail'>{html.escape(step.result)}<br>{step.seconds:.1f} s"
            f"{'<br>edited after the run' if step.edited else ''}</span>")
    if step.html.exists():
        link = html.escape(step.html.relative_to(outputs).as_posix(), quote=True)
        text = f"<a href='{link}'>{text}</a>"
    return f"<td class='step {html.escape(step.status)}{edited}'>{text}</td>"
