"""Running the local packaging tools (apt-get, dpkg-deb, rpmbuild) that the demo builder needs."""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from gpurun.errors import BundleError

logger = logging.getLogger("gpurun.demo")

# How many characters of a failed tool's stderr an error message shows.
_STDERR_TAIL = 2000


def require_tool(name: str, *, hint: str) -> str:
    """Return the path of a program on PATH, or raise BundleError naming it and `hint`."""
    path = shutil.which(name)
    if path is None:
        raise BundleError(f"{name} not found on PATH\n  next step: {hint}")
    return path


def run_tool(
    argv: Sequence[str],
    *,
    hint: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run a local program and return its stdout.

    Raises BundleError with the command, exit code, the end of stderr and `hint` (the next step)
    when the program is missing or exits non-zero.
    """
    command = shlex.join(argv)
    logger.debug("running %s%s", command, f" in {cwd}" if cwd else "")
    try:
        result = subprocess.run(
            list(argv), cwd=cwd, env=dict(env) if env is not None else None,
            capture_output=True, text=True, check=False,
        )
    except FileNotFoundError as error:
        raise BundleError(
            f"{argv[0]} not found, so `{command}` could not run\n  next step: {hint}"
        ) from error

    if result.returncode != 0:
        stderr = result.stderr.strip()[-_STDERR_TAIL:]
        raise BundleError(
            f"`{command}` failed with exit code {result.returncode}:\n{stderr}\n  next step: {hint}"
        )
    return result.stdout
