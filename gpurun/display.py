"""Render facts, plans, outcomes, commands and diffs as tables for the executed notebook.

Each render returns a MIME bundle (HTML for JupyterLab and the HTML report, plain text for
terminals and papermill logs), so the record reads well wherever it is opened.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gpurun.host.changes import FileChange
from gpurun.host.host import CommandResult
from gpurun.plan import Check, Outcome

# Command output longer than this is folded in the record; the full text stays in the notebook.
FOLD_LINES = 12

STATUS_COLOURS = {
    "changed": "#b35c00", "unchanged": "#2d6a2d", "planned": "#1f4e99",
    "passed": "#2d6a2d", "failed": "#a00000", "skipped": "#666666",
    "ok": "#2d6a2d", "warning": "#b35c00", "blocking": "#a00000",
}

MimeBundle = dict[str, Any]


def table(title: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> MimeBundle:
    """Return a titled table as HTML and as aligned plain text."""
    body = [[_cell_text(value) for value in row] for row in rows]
    html_rows = "".join(
        "<tr>" + "".join(_html_cell(value) for value in row) + "</tr>" for row in body
    )
    html_header = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in header)
    rendered = (
        f"<h4>{html.escape(title)}</h4>"
        f"<table class='gpurun'><thead><tr>{html_header}</tr></thead>"
        f"<tbody>{html_rows}</tbody></table>"
    )
    return {"text/html": rendered, "text/plain": _plain_table(title, header, body)}


def facts_table(title: str, facts: Mapping[str, object]) -> MimeBundle:
    return table(title, ["fact", "value"], sorted(facts.items()))


def outcomes_table(title: str, outcomes: Sequence[Outcome]) -> MimeBundle:
    rows = [(o.status, o.target, o.change, o.reason) for o in outcomes]
    return table(title, ["status", "target", "change", "reason"], rows)


def checks_table(title: str, checks: Sequence[Check]) -> MimeBundle:
    rows = [(c.status, c.name, c.detail) for c in checks]
    return table(title, ["status", "check", "detail"], rows)


def commands_log(commands: Sequence[CommandResult]) -> MimeBundle:
    """Return every command run with its exit code and output, long output folded."""
    parts = []
    plain = []
    for command in commands:
        line = " ".join(command.argv)
        prefix = "sudo " if command.sudo else ""
        output = (command.stdout + command.stderr).rstrip()
        summary = f"[{command.exit_code}] {prefix}{line} ({command.seconds:.2f} s)"
        plain.append(summary + ("\n    " + output.replace("\n", "\n    ") if output else ""))
        if not output:
            parts.append(f"<div><code>{html.escape(summary)}</code></div>")
            continue
        is_open = " open" if output.count("\n") < FOLD_LINES else ""
        parts.append(
            f"<details{is_open}><summary><code>{html.escape(summary)}</code></summary>"
            f"<pre>{html.escape(output)}</pre></details>"
        )
    title = f"<h4>Commands run ({len(commands)})</h4>"
    folded = f"<details><summary>show all</summary>{''.join(parts)}</details>"
    return {"text/html": title + folded, "text/plain": "\n".join(plain)}


def changes_view(changes: Sequence[FileChange]) -> MimeBundle:
    """Return every file changed with its checksums, backup and diff."""
    if not changes:
        return {"text/plain": "No files changed.", "text/html": "<p>No files changed.</p>"}
    parts = ["<h4>Files changed</h4>"]
    plain = ["Files changed:"]
    for change in changes:
        head = (
            f"{change.action} {change.path}: sha256 {change.sha256_before or '-'} -> "
            f"{change.sha256_after or '-'}; backup {change.backup or '-'}"
        )
        if change.version_before or change.version_after:
            head += f"; version {change.version_before or '-'} -> {change.version_after or '-'}"
        plain.append(head + ("\n" + change.diff if change.diff else ""))
        parts.append(f"<p><code>{html.escape(head)}</code></p>")
        if change.diff:
            parts.append(f"<pre>{html.escape(change.diff)}</pre>")
    return {"text/html": "".join(parts), "text/plain": "\n".join(plain)}


def error_view(message: str, detail: str) -> MimeBundle:
    """Return a short error with the next step, the technical detail folded below it."""
    rendered = (
        f"<div style='border-left:4px solid #a00000;padding-left:8px'>"
        f"<pre style='white-space:pre-wrap'>{html.escape(message)}</pre>"
        f"<details><summary>technical detail</summary><pre>{html.escape(detail)}</pre></details>"
        f"</div>"
    )
    return {"text/html": rendered, "text/plain": message}


def _cell_text(value: object) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if value is None:
        return "-"
    return str(value)


def _html_cell(value: str) -> str:
    colour = STATUS_COLOURS.get(value)
    escaped = html.escape(value)
    if colour:
        return f"<td style='color:{colour};font-weight:bold'>{escaped}</td>"
    return f"<td>{escaped}</td>"


def _plain_table(title: str, header: Sequence[str], rows: list[list[str]]) -> str:
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(width, min(len(value), 60)) for width, value in zip(widths, row)]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)
