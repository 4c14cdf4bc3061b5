"""Detection of the frontend that drives the kernel (a person in JupyterLab, or papermill)."""

from __future__ import annotations

from typing import Any


def is_interactive() -> bool:
    """Return whether the cell running now was sent by a frontend that can take input.

    JupyterLab (like the classic notebook and VS Code) sends each execute_request with
    `allow_stdin` true. nbclient, which papermill and `gpurun run` use, sends it false, and a
    script or a terminal IPython has no kernel at all. So this is true only for a person at a
    notebook, who can click a button, and false wherever nothing may wait for a click.
    Call it while a cell runs. Inside a widget callback the request is a comm message, so it
    returns False there.
    """
    request = _current_request()
    if request.get("header", {}).get("msg_type") != "execute_request":
        return False
    return bool(request.get("content", {}).get("allow_stdin", False))


def in_widget_callback() -> bool:
    """Return whether the code running now is a widget's callback, such as a button click."""
    return _current_request().get("header", {}).get("msg_type") == "comm_msg"


def user_namespace() -> dict[str, Any] | None:
    """Return the notebook's global variables, or None outside a kernel."""
    shell = _shell()
    return None if shell is None else shell.user_ns


def show_bundle(bundle: dict[str, Any]) -> None:
    """Display a MIME bundle in the notebook, or print its text outside one."""
    if _shell() is None:
        print(bundle.get("text/plain", ""))
        return
    from IPython.display import display

    display(bundle, raw=True)


def show_widget(widget: Any, text: str) -> None:
    """Display a widget, with `text` for viewers that cannot render widgets (a saved record)."""
    from IPython.display import display

    view = {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}
    display({"application/vnd.jupyter.widget-view+json": view, "text/plain": text}, raw=True)


def _current_request() -> dict[str, Any]:
    """Return the Jupyter message the kernel is handling now, or {} outside a kernel."""
    shell = _shell()
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return {}
    get_parent = getattr(shell, "get_parent", None) or kernel.get_parent
    return get_parent() or {}


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # gpurun used as a library without IPython
        return None
    return get_ipython()
