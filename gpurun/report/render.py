"""Render an executed notebook as one HTML file that needs no network to open.

nbconvert's lab template loads require.js, MathJax and mermaid from a CDN. Control nodes in an
offline network cannot reach one, and a change record should not depend on one, so the
template below drops those scripts: the runbooks show only tables, text and diffs.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import nbformat
from nbconvert import HTMLExporter

OFFLINE_TEMPLATE_NAME = "gpurun_offline.html.j2"

OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def offline_exporter() -> HTMLExporter:
    """Return nbconvert's lab HTML exporter with every script from the network left out."""
    return HTMLExporter(
        template_name="lab",
        template_file=OFFLINE_TEMPLATE_NAME,
        extra_loaders=[jinja2.DictLoader({OFFLINE_TEMPLATE_NAME: OFFLINE_TEMPLATE})],
    )


def html_path(notebook: Path) -> Path:
    return notebook.with_suffix(".html")


def render_notebook(notebook: Path, exporter: HTMLExporter | None = None) -> Path:
    """Write the notebook's HTML beside it, unless an HTML file newer than it is there."""
    target = html_path(notebook)
    if target.exists() and target.stat().st_mtime_ns >= notebook.stat().st_mtime_ns:
        return target
    node = nbformat.read(str(notebook), as_version=4)
    body, _ = (exporter or offline_exporter()).from_notebook_node(
        node, resources={"metadata": {"name": f"{notebook.parent.name} {notebook.stem}"}}
    )
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(body, encoding="utf-8")
    temporary.replace(target)
    return target
