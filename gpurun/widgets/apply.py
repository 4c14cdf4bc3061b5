"""The Apply button under a plan, and a progress bar while a plan is applied.

A cell must not block waiting for a click, because ipywidgets delivers a click only when the
kernel is idle, between cells. So the apply cell shows the plan and the button, then ends. The
click runs the plan later, and the step's next cells (verify, finish) check that it ran.
"""

from __future__ import annotations

import html
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from gpurun import display
from gpurun.errors import GpurunError
from gpurun.widgets.frontend import in_widget_callback, is_interactive, show_bundle, show_widget

log = logging.getLogger("gpurun.widgets")

WAITING, APPLYING, APPLIED, FAILED, REPLACED = (
    "waiting", "applying", "applied", "failed", "replaced")


class ApplyButton:
    """A button that runs `apply` once when clicked, with the output shown below it."""

    def __init__(self, changes: int, apply: Callable[[], Any]) -> None:
        import ipywidgets

        self._apply = apply
        self.state = WAITING
        self.error: BaseException | None = None
        self.clicked_at = ""
        self.result: Any = None
        self.button = ipywidgets.Button(
            description=f"Apply {changes} change{'s' if changes != 1 else ''}",
            button_style="warning", icon="play",
            tooltip="Carry out the plan above on the host",
            layout=ipywidgets.Layout(width="auto"),
        )
        self.button.on_click(self._clicked)
        self.output = ipywidgets.Output()
        note = ipywidgets.HTML(
            "<p>Nothing has changed yet. Read the plan, then click <b>Apply</b>. "
            "The next cells check that it ran.</p>")
        show_widget(ipywidgets.VBox([note, self.button, self.output]),
                    "[Apply button: the plan above is applied only when it is clicked]")

    def click(self) -> None:
        """Apply the plan now, as a click on the button does."""
        self._clicked(self.button)

    def replace(self) -> None:
        """Disable a button whose plan a newer run of the apply cell replaced."""
        if self.state == WAITING:
            self.state = REPLACED
            self.button.disabled = True
            self.button.description = "Replaced by the newer plan below"

    def _clicked(self, _button: Any) -> None:
        if self.state != WAITING:
            return
        self.state = APPLYING
        self.clicked_at = time.strftime("%H:%M:%S")
        self.button.disabled = True
        self.button.description = "Applying..."
        with self.output:
            try:
                self.result = self._apply()
            except Exception as error:  # shown below the button; verify() raises it again
                log.debug("applying the plan failed", exc_info=True)
                self.state, self.error = FAILED, error
                self.button.description, self.button.button_style = "Failed", "danger"
                show_bundle(error_bundle(error))
                return
        self.state = APPLIED
        self.button.description, self.button.button_style = "Applied", "success"


def error_bundle(error: BaseException) -> dict[str, Any]:
    """Return an error as its message (a bug also names its type), the traceback folded."""
    detail = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    message = str(error) if isinstance(error, GpurunError) else f"{type(error).__name__}: {error}"
    return display.error_view(message, detail)


class _NoProgress:
    """Progress that shows nothing, for papermill runs: the log lines tell the same story."""

    def begin(self, label: str) -> None:
        pass

    def advance(self) -> None:
        pass

    def close(self, failed: bool = False) -> None:
        pass


class _BarProgress(logging.Handler):
    """A progress bar over the actions of a plan, with the latest gpurun log message below.

    Uploads and installs log each file they handle ("uploading docker-20.10.24.tgz (71670654
    bytes) to ..."), so the message shows which part of an action is running.

    NOTE: the bar counts actions, not bytes. Host.upload copies a file with one scp call that
    reports no progress, so a large upload shows as its log line until it ends.
    """

    def __init__(self, total: int) -> None:
        import ipywidgets

        super().__init__(level=logging.INFO)
        self.total = total
        self.done = 0
        self.bar = ipywidgets.IntProgress(value=0, min=0, max=max(total, 1),
                                          description=f"0/{total}", bar_style="info")
        self.label = ipywidgets.HTML()
        self.detail = ipywidgets.HTML()
        show_widget(ipywidgets.VBox([ipywidgets.HBox([self.bar, self.label]), self.detail]),
                    f"[progress bar over {total} actions]")
        logging.getLogger("gpurun").addHandler(self)

    def begin(self, label: str) -> None:
        self.label.value = f"<code>{html.escape(label)}</code>"

    def advance(self) -> None:
        self.done += 1
        self.bar.value = self.done
        self.bar.description = f"{self.done}/{self.total}"

    def close(self, failed: bool = False) -> None:
        logging.getLogger("gpurun").removeHandler(self)
        self.bar.bar_style = "danger" if failed else "success"
        if failed:
            self.label.value = f"failed at: {self.label.value}"
        else:
            self.label.value = "done"
            self.detail.value = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.detail.value = f"<small>{html.escape(record.getMessage())}</small>"


def apply_progress(total: int) -> _NoProgress | _BarProgress:
    """Return a progress bar for `total` actions in JupyterLab, or one that shows nothing."""
    if total and (is_interactive() or in_widget_callback()):
        return _BarProgress(total)
    return _NoProgress()
