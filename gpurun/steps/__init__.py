"""The host steps, one module per runbook, in the order a run executes them."""

from __future__ import annotations

# (number, runbook name) in run order; the number prefixes each saved notebook.
HOST_STEPS = [
    ("01", "preflight"),
    ("02", "docker-binaries"),
    ("03", "docker-service"),
    ("04", "nvidia-toolkit"),
    ("05", "runtime"),
    ("06", "verify"),
]

STEP_NAMES = [name for _, name in HOST_STEPS]
