"""Runbook start-up: logging, the connection to the host, and the step record."""

from __future__ import annotations

import logging
import os
import re
import secrets
import sys
import time
import traceback
from typing import Any

from gpurun import display
from gpurun.errors import GpurunError
from gpurun.host import Host, HostSpec
from gpurun.host.connection import resolve_login
from gpurun.step import Step, show

RUN_CONTROL_DIRS = "/tmp/gpurun-ssh/"
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# The end of a plan run's id, so that a plan never reads as a run that changed hosts.
PLAN_SUFFIX = "-plan"


def new_run_id() -> str:
    """Return a run id that sorts by time and is unique across control nodes."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def start(
    step: str,
    *,
    host: str,
    address: str,
    port: int = 22,
    user: str = "root",
    key_file: str = "",
    known_hosts_file: str = "",
    become: bool = False,
    sudo_password_env: str = "",
    run_id: str = "",
    plan_only: bool = False,
    **step_parameters: Any,
) -> Step:
    """Connect to the host and open the record of one step of a run."""
    _configure_logging()
    _show_errors_briefly()
    run_id = run_id or new_run_id()
    if not RUN_ID_PATTERN.match(run_id):
        raise GpurunError(
            f"invalid run_id {run_id!r}: use letters, digits, '.', '_' and '-' (at most 64), "
            f"or leave it empty for a new one"
        )
    if not address:
        raise GpurunError(
            f"no address for host {host}\n"
            f"  next step: pick a host in the host picker above, or set address in the "
            f"parameters cell"
        )
    # The steps of one run share ssh connections; a later run never reuses a connection to
    # a host that was replaced at the same address since (sandbox hosts are).
    # An operator's own GPURUN_SSH_CONTROL_DIR is kept; gpurun's per-run folder follows the run.
    configured = os.environ.get("GPURUN_SSH_CONTROL_DIR", RUN_CONTROL_DIRS)
    if configured.startswith(RUN_CONTROL_DIRS):
        os.environ["GPURUN_SSH_CONTROL_DIR"] = f"{RUN_CONTROL_DIRS}{run_id}"
    # An empty user or port 0 (an inventory without ansible_user or ansible_port) takes what
    # ssh's configuration gives for the address, which may be a Host alias in ~/.ssh/config.
    login_user, login_port = resolve_login(address, user, int(port or 0))
    spec = HostSpec(
        name=host,
        address=address,
        port=login_port,
        user=login_user,
        key_file=key_file or None,
        known_hosts_file=known_hosts_file or None,
        become=bool(become),
        sudo_password_env=sudo_password_env or None,
        path_prefix=step_parameters.get("bin_dir") or None,
    )
    connected = Host(spec=spec, machine=None, run_id=run_id)
    # Fails early, before any fact is read, when the login cannot act as root.
    connected.require_root()
    record = Step(name=step, host=connected, plan_only=bool(plan_only))
    parameters = {
        "host": host, "address": address, "port": port, "user": user, "key_file": key_file,
        "known_hosts_file": known_hosts_file, "become": become,
        "sudo_password_env": sudo_password_env, "run_id": run_id,
        "plan_only": plan_only, **step_parameters,
    }
    record.show_header(parameters)
    return record


def _configure_logging() -> None:
    """Send gpurun's info messages to the cell output, once per kernel."""
    logger = logging.getLogger("gpurun")
    if any(getattr(h, "gpurun_runbook", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.gpurun_runbook = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _show_errors_briefly() -> None:
    """Show a gpurun error as its message with the traceback folded, in a notebook.

    The cell still fails, so papermill stops the run and the record shows where.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def handler(shell: Any, kind: type, error: BaseException, tb: Any, tb_offset: Any = None):
        detail = "".join(traceback.format_exception(kind, error, tb))
        show(display.error_view(str(error), detail))
        # The error output marks the cell as failed (papermill stops there and records the
        # message); its text only points at the message above instead of repeating it.
        pointer = f"{kind.__name__}: the step stopped here, see the message above"
        shell._showtraceback(kind, error, [pointer])

    shell.set_custom_exc((GpurunError,), handler)
