"""POSIX sh programs that stand in for the NVIDIA Container Toolkit's executables.

They contain no NVIDIA code. They exist so that gpurun can rehearse the install, the runtime
registration and the verification on hosts without GPUs. Each program appends one line per call
(UTC time, pid, arguments) to /var/log/gpurun-standin/<program>.log, or to the folder named by
the environment variable GPURUN_STANDIN_LOG_DIR. For `--version` each prints its version and the
words "gpurun stand-in". The first line of each `--version` output follows the real program's
form, because dockerd reads `<runtime> --version` the way it reads runc's ("<name> version X",
then "commit: ...").
"""

from __future__ import annotations

import re

from gpurun.errors import BundleError

STANDIN_LOG_DIR = "/var/log/gpurun-standin"

# The error nvidia-container-cli prints when no NVIDIA kernel driver is loaded.
DRIVER_NOT_LOADED = "nvidia-container-cli: initialization error: nvml error: driver not loaded"

_HEADER = """#!/bin/sh
# gpurun stand-in for {program} {release}, for rehearsals on hosts without NVIDIA GPUs.
# It contains no NVIDIA code.
set -u

standin_release='{release}'
log_dir="${{GPURUN_STANDIN_LOG_DIR:-{log_dir}}}"

# Record the call. A log that cannot be written must not break the program.
{{
    mkdir -p "$log_dir" &&
    printf '%s pid=%s %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$$" "$0 $*" \\
        >>"$log_dir/{program}.log"
}} 2>/dev/null || true

"""

_RUNTIME_BODY = """find_runc() {
    if command -v runc 2>/dev/null; then
        return 0
    fi
    for dir in /usr/bin /usr/local/bin /usr/sbin; do
        if [ -x "$dir/runc" ]; then
            echo "$dir/runc"
            return 0
        fi
    done
    return 1
}

if [ "$#" -eq 1 ] && [ "$1" = "--version" ]; then
    echo "NVIDIA Container Runtime version $standin_release"
    echo "commit: gpurun stand-in, no NVIDIA code"
    echo
    if runc=$(find_runc); then
        "$runc" --version
    fi
    exit 0
fi

# NOTE: the real runtime adds the NVIDIA hook when the container's OCI spec sets
# NVIDIA_VISIBLE_DEVICES. The stand-in never does, so such containers run here without GPUs.
if ! runc=$(find_runc); then
    echo "nvidia-container-runtime (gpurun stand-in): runc not found on PATH" \\
        "or in /usr/bin, /usr/local/bin, /usr/sbin" >&2
    exit 1
fi
exec "$runc" "$@"
"""

_HOOK_BODY = """case "${{1:-}}" in
--version)
    echo "NVIDIA Container Runtime Hook version $standin_release"
    echo "commit: gpurun stand-in, no NVIDIA code"
    exit 0
    ;;
prestart)
    # dockerd adds this hook only for containers that request GPUs (docker run --gpus). Without
    # a driver the real hook fails in nvidia-container-cli, and the stand-in fails the same way.
    echo "{driver_not_loaded}" >&2
    exit 1
    ;;
esac
exit 0
"""

_CTK_BODY = """case "${1:-}" in
--version|-v)
    echo "NVIDIA Container Toolkit CLI version $standin_release"
    echo "commit: gpurun stand-in, no NVIDIA code"
    exit 0
    ;;
esac
echo "nvidia-ctk (gpurun stand-in): '$*' is not implemented, only --version is" >&2
exit 1
"""

_CLI_BODY = """case "${{1:-}}" in
--version|-V)
    echo "cli-version: $standin_release"
    echo "lib-version: $standin_release"
    echo "build revision: gpurun stand-in, no NVIDIA code"
    exit 0
    ;;
esac
# Every command of the real CLI (info, list, configure) loads the driver first, and the
# stand-in is for hosts without one.
echo "{driver_not_loaded}" >&2
exit 1
"""

_BODIES: dict[str, str] = {
    "nvidia-container-runtime": _RUNTIME_BODY,
    "nvidia-container-runtime-hook": _HOOK_BODY.format(driver_not_loaded=DRIVER_NOT_LOADED),
    "nvidia-ctk": _CTK_BODY,
    "nvidia-container-cli": _CLI_BODY.format(driver_not_loaded=DRIVER_NOT_LOADED),
}

STANDIN_PROGRAMS: tuple[str, ...] = tuple(_BODIES)


def standin_script(program: str, release: str) -> str:
    """Return the sh source of the stand-in for `program` that reports `release` (e.g. 1.17.2)."""
    if program not in _BODIES:
        raise BundleError(
            f"no stand-in exists for {program!r}, known programs: {', '.join(STANDIN_PROGRAMS)}"
        )
    # The release goes into a single-quoted sh string, so it may contain no quote or space.
    if not re.fullmatch(r"[0-9A-Za-z.+~]+", release):
        raise BundleError(
            f"invalid stand-in release {release!r}: expected digits, letters and . + ~ only"
        )
    header = _HEADER.format(program=program, release=release, log_dir=STANDIN_LOG_DIR)
    return header + _BODIES[program]
