"""One host step of a runbook: facts, plan, apply, verify, record.

A runbook creates a Step in its first cell and calls one method per cell, so the saved
notebook shows each stage with its own output.
"""

from __future__ import annotations

import getpass
import logging
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gpurun import display, widgets
from gpurun.errors import GpurunError
from gpurun.host import Host
from gpurun.plan import Action, Check, Outcome

log = logging.getLogger("gpurun.step")

SUMMARY_MIME = "application/vnd.gpurun.step+json"


class VerificationFailed(GpurunError):
    """A step's changes were applied but the host does not show the wanted state."""


def show(bundle: dict[str, Any]) -> None:
    """Display a MIME bundle in the notebook, or print its text outside one."""
    try:
        from IPython import get_ipython
        from IPython.display import display as ipython_display
    except ImportError:  # gpurun used as a library without IPython
        print(bundle.get("text/plain", ""))
        return
    if get_ipython() is None:
        print(bundle.get("text/plain", ""))
        return
    ipython_display(bundle, raw=True)


@dataclass
class Step:
    """The record and state of one step on one host."""

    name: str
    host: Host
    plan_only: bool = False
    started: float = field(default_factory=time.time)
    facts: dict[str, Any] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    # The runbook's parameters, as show_header received them (they never hold secrets).
    parameters: dict[str, Any] = field(default_factory=dict)
    # Who ran the step, from where and as which ssh user: set by show_header, kept in summary.
    operator: dict[str, str] = field(default_factory=dict)
    # In JupyterLab: the Apply button under the last plan shown, until the record shows it.
    _apply_button: widgets.ApplyButton | None = field(default=None, init=False, repr=False)

    def show_header(self, parameters: dict[str, Any]) -> None:
        """Show who runs what, where and when, and the parameters (which never hold secrets)."""
        who = {
            "step": self.name,
            "host": self.host.name,
            "address": self.host.spec.address,
            "ssh user": self.host.spec.user,
            "run id": self.host.run_id,
            "mode": _mode(self.plan_only, parameters),
            "run by": getpass.getuser(),
            "control node": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self.started)),
        }
        self.operator = {
            "local_user": who["run by"], "control_node": who["control node"],
            "ssh_user": who["ssh user"], "address": who["address"],
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
        }
        show(display.facts_table(f"{self.name} on {self.host.name}", who))
        self.parameters = dict(parameters)
        show(display.facts_table("Parameters", parameters))

    def show_facts(self, facts: dict[str, Any], title: str = "Facts") -> None:
        self.facts.update(facts)
        show(display.facts_table(title, facts))

    def apply(self, actions: list[Action]) -> list[Outcome]:
        """Show the plan, then carry out each needed action unless this is a plan-only run."""
        planned = [Outcome(a.target, "planned" if a.needed else "unchanged", a.change, a.reason)
                   for a in actions]
        show(display.outcomes_table("Plan", planned))
        if self.plan_only:
            self.outcomes.extend(planned)
            return planned

        # In JupyterLab a person confirms a change with the Apply button. The cell ends here,
        # because a click reaches the kernel only between cells.
        changes = sum(action.needed for action in actions)
        if changes and _waits_for_click(self.parameters):
            if self._apply_button is not None:
                self._apply_button.replace()
            self._apply_button = widgets.ApplyButton(changes, lambda: self._apply_now(actions))
            return planned
        return self._apply_now(actions)

    def _apply_now(self, actions: list[Action]) -> list[Outcome]:
        """Carry out each needed action, showing progress in JupyterLab, and the outcome."""
        outcomes = []
        progress = widgets.apply_progress(sum(action.needed for action in actions))
        for action in actions:
            if action.apply is None:
                log.info("%s: %s unchanged: %s", self.host.name, action.target, action.reason)
                outcomes.append(Outcome(action.target, "unchanged", action.change, action.reason))
                continue
            log.info("%s: %s: %s", self.host.name, action.target, action.change)
            progress.begin(f"{action.target}: {action.change}")
            try:
                action.apply()
            except BaseException:
                progress.close(failed=True)
                raise
            progress.advance()
            outcomes.append(Outcome(action.target, "changed", action.change, action.reason))
        progress.close()
        self.outcomes.extend(outcomes)
        show(display.outcomes_table("Outcome", outcomes))
        return outcomes

    def _require_applied(self) -> None:
        """Stop a verify or finish cell that runs before the Apply button ran the plan.

        Once it ran, show its outcome again, so that the cell outputs of a saved notebook
        hold it: the button's own output lives in the widget, which a record may not keep.
        """
        button = self._apply_button
        if button is None:
            return
        where = f"{self.name} on {self.host.name}"
        if button.state in (widgets.apply.WAITING, widgets.apply.APPLYING):
            raise GpurunError(
                f"the plan of {where} is not applied yet\n"
                f"  next step: click Apply below the plan, then run this cell again; or set "
                f"auto_apply = True in the parameters cell and run the notebook again"
            )
        if button.state == widgets.apply.FAILED:
            raise GpurunError(
                f"applying the plan of {where} failed: {button.error}\n"
                f"  next step: read the error below the Apply button, fix the cause, and run "
                f"the notebook again from the top"
            )
        self._apply_button = None
        outcomes = button.result or []
        show(display.outcomes_table(f"Outcome (applied with the Apply button at "
                                    f"{button.clicked_at})", outcomes))

    def verify(self, checks: list[Check]) -> None:
        """Record the checks and fail the step if any failed."""
        self._require_applied()
        if self.plan_only:
            # Nothing was applied, so a failed check of the expected state only shows what would change.
            checks = [Check(c.name, "skipped", f"plan only, not applied: {c.detail}")
                      if c.failed else c for c in checks]
        self.checks.extend(checks)
        show(display.checks_table("Verification", checks))
        failures = [c for c in checks if c.failed]
        if failures and not self.plan_only:
            lines = "\n".join(f"  {c.name}: {c.detail}" for c in failures)
            raise VerificationFailed(f"{self.name} on {self.host.name}: verification failed\n{lines}")

    @property
    def changed(self) -> bool:
        return any(o.changed for o in self.outcomes)

    def summary(self) -> dict[str, Any]:
        """Return the machine-readable record of this step."""
        return {
            "step": self.name,
            "host": self.host.name,
            "run_id": self.host.run_id,
            "plan_only": self.plan_only,
            "changed": self.changed,
            "planned_changes": sum(o.status == "planned" for o in self.outcomes),
            "started": self.started,
            "seconds": round(time.time() - self.started, 2),
            "outcomes": [asdict(o) for o in self.outcomes],
            "checks": [asdict(c) for c in self.checks],
            "file_changes": [
                {k: v for k, v in asdict(c).items() if k != "diff"} for c in self.host.changes
            ],
            "commands": len(self.host.commands),
            "operator": self.operator,
            "uploaded_bytes": self.uploaded_bytes,
        }

    @property
    def uploaded_bytes(self) -> int:
        """Return the bytes this step copied to the host: Host.upload journals each copy."""
        copied = [Path(c.argv[1]) for c in self.host.commands if c.argv[:1] == ["upload"]]
        return sum(path.stat().st_size for path in copied if path.is_file())

    def finish(self) -> dict[str, Any]:
        """Show the commands and file changes, and store the summary in the notebook."""
        self._require_applied()
        show(display.changes_view(self.host.changes))
        show(display.commands_log(self.host.commands))
        summary = self.summary()
        verdict = "changed" if self.changed else "unchanged"
        if self.plan_only:
            verdict = f"plan: {summary['planned_changes']} change(s) would be made"
        text = f"{self.name} on {self.host.name}: {verdict}"
        show({SUMMARY_MIME: summary, "text/plain": text, "text/html": f"<p><b>{text}</b></p>"})
        return summary


def _waits_for_click(parameters: dict[str, Any]) -> bool:
    """Return whether a plan waits for the Apply button: in JupyterLab, unless auto_apply."""
    return not parameters.get("auto_apply") and widgets.is_interactive()


def _mode(plan_only: bool, parameters: dict[str, Any]) -> str:
    if plan_only:
        return "plan only: nothing is changed"
    if _waits_for_click(parameters):
        return "apply after a click on Apply"
    return "apply"
