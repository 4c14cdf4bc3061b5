"""Run commands on the control node for the sandbox, turning failures into SandboxError."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence

from gpurun.errors import SandboxError

log = logging.getLogger("gpurun.sandbox")


def run_checked(argv: Sequence[str], *, host: str | None, next_step: str) -> str:
    """Run `argv` on the control node and return its stdout.

    Raises SandboxError with the command, its exit code and output, the sandbox host it was
    for (None for shared state), and `next_step` when the command is missing or exits non-zero.
    """
    for_host = f" for sandbox host {host}" if host else ""
    log.debug("sandbox command%s: %s", for_host, " ".join(argv))
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise SandboxError(
            f"command not found on the control node{for_host}: {argv[0]} ({error}). "
            f"Next step: {next_step}"
        ) from error

    if result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip())[-2000:]
        raise SandboxError(
            f"command failed on the control node{for_host}: {' '.join(argv)}\n"
            f"  exit code: {result.returncode}\n"
            f"  output:    {output}\n"
            f"  next step: {next_step}"
        )
    return result.stdout
