"""JupyterLab controls for the runbooks: the host and parameter picker, the Apply button, and
the progress of an apply.

They act only when a person runs the notebook in JupyterLab (see is_interactive). Under
papermill the same cells wait for nothing: the picker leaves the parameters cell's values
alone, and a plan is applied as soon as it is shown.
"""

from __future__ import annotations

from gpurun.widgets.apply import ApplyButton, apply_progress
from gpurun.widgets.frontend import is_interactive
from gpurun.widgets.picker import HostPicker, host_picker

__all__ = ["ApplyButton", "HostPicker", "apply_progress", "host_picker", "is_interactive"]
