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
# Diffs up to this many lines show unfolded.
DIFF_OPEN_LINES = 60

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
    """Return every change with its state before and after, its backup, and each text diff."""
    if not changes:
        return {"text/plain": "No changes.", "text/html": "<p>No changes.</p>"}
    rows = [(c.action, c.path, *_before_after(c), c.backup or "-") for c in changes]
    rendered = table(f"Changes ({len(changes)})",
                     ["change", "target", "before", "after", "backup"], rows)
    html_parts = [rendered["text/html"]]
    plain_parts = [rendered["text/plain"]]
    for change in changes:
        if not change.diff:
            continue
        is_open = " open" if change.diff.count("\n") < DIFF_OPEN_LINES else ""
        html_parts.append(
            f"<details{is_open}><summary><code>diff {html.escape(change.path)}</code></summary>"
            f"<pre>{html.escape(change.diff)}</pre></details>"
        )
        plain_parts.append(change.diff)
    return {"text/html": "".join(html_parts), "text/plain": "\n".join(plain_parts)}


def _before_after(change: FileChange) -> tuple[str, str]:
    """Return the before and after columns: SHA-256 and version, or the state of a non-file."""
    if change.action.startswith(("package-", "service-")):
        return (change.version_before or "-", change.version_after or "-")
    if change.action.startswith("group-"):
        created = change.action == "group-created"
        return ("absent", "present") if created else ("present", "absent")
    before = f"sha256 {change.sha256_before}" if change.sha256_before else "absent"
    after = f"sha256 {change.sha256_after}" if change.sha256_after else "absent"
    if change.version_before:
        before += f", {change.version_before}"
    if change.version_after:
        after += f", {change.version_after}"
    return before, after


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
    """Return a value as cell text: a mapping as `key: value` lines, a list as one line each."""
    if isinstance(value, dict):
        return "\n".join(f"{key}: {_scalar_text(item)}" for key, item in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return "\n".join(_scalar_text(item) for item in value) or "-"
    if value is None:
        return "-"
    return str(value)


def _scalar_text(value: object) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return "-" if value is None else str(value)


def _html_cell(value: str) -> str:
    colour = STATUS_COLOURS.get(value)
    escaped = html.escape(value).replace("\n", "<br>")
    # JupyterLab aligns table cells right by default, which makes sentences hard to read.
    align = "text-align:left;vertical-align:top"
    if colour:
        return f"<td style='{align};color:{colour};font-weight:bold'>{escaped}</td>"
    return f"<td style='{align}'>{escaped}</td>"


def _plain_table(title: str, header: Sequence[str], rows: list[list[str]]) -> str:
    rows = [[value.replace("\n", "; ") for value in row] for row in rows]
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(width, min(len(value), 60)) for width, value in zip(widths, row)]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)
