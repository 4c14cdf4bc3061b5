"""sudo for a login that is not root: the command prefix, and where the password comes from.

The password never goes into argv, a log, a notebook or a parameter: it is read from an
environment variable that a parameter names, or asked for, and fed to `sudo -S` on stdin.
"""

from __future__ import annotations

import getpass
import os
import sys

from gpurun.errors import ConnectionFailed
from gpurun.host.connection import HostSpec

# For a policy that needs no password; -n makes sudo fail instead of waiting for one.
SUDO_WITHOUT_PASSWORD = ["sudo", "-n", "--"]

# -S reads the password from the first line of stdin and leaves the rest to the command.
# -k ignores a cached sudo ticket, so sudo reads that line on every call: with a ticket it
# would skip the read and hand the password to the command. -p "" keeps stderr free of prompts.
# gpurun probes the policy with `true` only. Where a sudoers rule exempts sh from the password,
# sudo leaves the password line unread, and Host's root shell skips it (SKIP_TO_LINE).
# NOTE: sudoers with `requiretty` (old RHEL defaults) rejects these commands, since gpurun
# runs them without a terminal.
SUDO_WITH_PASSWORD = ["sudo", "-S", "-k", "-p", "", "--"]

# Probes whether the policy lets the login run commands without a password.
SUDO_PROBE = ["sudo", "-n", "-k", "--", "true"]

PASSWORD_REQUIRED = "password is required"


def read_sudo_password(spec: HostSpec) -> str:
    """Return the sudo password of spec's login, from the named environment variable or asked.

    Raises ConnectionFailed when neither source gives one: an unset variable, or a run
    without a terminal or notebook front end to ask in (papermill runs have none).
    """
    if spec.sudo_password_env:
        value = os.environ.get(spec.sudo_password_env)
        if not value:
            raise ConnectionFailed(
                f"sudo on host {spec.name} needs the password of {spec.user}, but the "
                f"environment variable {spec.sudo_password_env} (named by sudo_password_env) "
                f"is not set on the control node\n  next step: export it in the environment "
                f"that starts gpurun or JupyterLab, then run the step again"
            )
        return value
    return _ask_password(spec)


def _ask_password(spec: HostSpec) -> str:
    prompt = f"sudo password for {spec.user} on {spec.name}: "
    not_interactive = ConnectionFailed(
        f"sudo on host {spec.name} needs the password of {spec.user}, and this run cannot ask "
        f"for it (no terminal, or a notebook run by papermill)\n  next step: set "
        f"sudo_password_env to the name of an environment variable that holds it, or run the "
        f"runbook in JupyterLab, which asks in a password field"
    )
    if _in_notebook_kernel():
        # ipykernel replaces getpass.getpass with a request that JupyterLab shows as a
        # password field; the kernel raises StdinNotImplementedError where stdin is off.
        from IPython.core.error import StdinNotImplementedError

        try:
            return getpass.getpass(prompt)
        except StdinNotImplementedError:
            raise not_interactive from None
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(prompt)
    raise not_interactive


def _in_notebook_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
