"""Progress of a run while it runs: a host x step table in a terminal or a JupyterLab widget.

The display reads each host's run.json, which the runner rewrites as every step starts and
ends, so it works the same whether the hosts run in this process or in worker processes.
"""

from __future__ import annotations

import calendar
import html
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REFRESH_S = 0.5

# The word for each step status in a table cell. A running step also shows its elapsed time.
STATUS_WORDS = {"completed": "ok", "failed": "FAILED", "running": "running",
                "skipped": "done before", "waiting": "-"}
STATUS_COLORS = {"ok": "#1a7f37", "changed": "#0550ae", "FAILED": "#cf222e",
                 "running": "#9a6700", "plan": "#8250df"}


@dataclass
class StepState:
    status: str
    seconds: float
    changed: bool | None = None
    planned_changes: int = 0


@dataclass
class HostState:
    """One row of the display: a host's run as its run.json shows it now."""

    host: str
    status: str = "waiting"
    plan_only: bool = False
    steps: dict[str, StepState] = field(default_factory=dict)
    reason: str = ""
    seconds: float = 0.0

    def cell(self, step: str) -> str:
        """Return the text of this host's cell for `step`: status and seconds."""
        state = self.steps.get(step)
        if state is None:
            return "-"
        if state.status == "completed":
            if self.plan_only:
                word = f"plan {state.planned_changes}"
            else:
                word = "changed" if state.changed else "ok"
            return f"{word} {state.seconds:.0f}s"
        if state.status in ("running", "failed"):
            return f"{STATUS_WORDS[state.status]} {state.seconds:.0f}s"
        return STATUS_WORDS.get(state.status, state.status)


def read_states(outputs: Path, run_id: str, hosts: list[str], now: float | None = None
                ) -> list[HostState]:
    """Return each host's state from outputs/<host>/<run_id>/run.json (waiting without one)."""
    now = time.time() if now is None else now
    states = []
    for host in hosts:
        try:
            record = json.loads((outputs / host / run_id / "run.json").read_text())
        except (OSError, ValueError):  # not started yet, or caught between write and rename
            states.append(HostState(host))
            continue
        states.append(_state(host, record, now))
    return states


def _state(host: str, record: dict[str, Any], now: float) -> HostState:
    started = _epoch(record.get("started", ""))
    ended = _epoch(record.get("ended", "")) if record.get("ended") else None
    state = HostState(host, status=record.get("status", "running"),
                      plan_only=bool(record.get("plan_only")), reason=record.get("reason", ""),
                      seconds=((ended or now) - started) if started else 0.0)
    for step in record.get("steps", []):
        seconds = step.get("seconds", 0.0)
        if step.get("status") == "running" and step.get("started"):
            seconds = now - _epoch(step["started"])
        state.steps[step["name"]] = StepState(step.get("status", ""), seconds,
                                              step.get("changed"),
                                              step.get("planned_changes", 0))
    return state


def _epoch(stamp: str) -> float:
    """Return the Unix time of a run.json stamp (UTC, to the second), or 0.0 if invalid."""
    try:
        return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return 0.0


def text_table(states: list[HostState], steps: list[str]) -> list[str]:
    """Return the host x step table as lines of text, one host per line."""
    header = ["host", *steps, "status"]
    rows = [[s.host, *(s.cell(step) for step in steps), _host_status(s)] for s in states]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [value.ljust(width) for value, width in zip(row, widths)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return lines


def _host_status(state: HostState) -> str:
    if state.status == "failed":
        return f"failed: {state.reason}" if state.reason else "failed"
    if state.status == "waiting":
        return "waiting"
    return f"{state.status} {state.seconds:.0f}s"


class _Poller:
    """Reads the hosts' run.json files every REFRESH_S seconds on a thread, and shows them."""

    def __init__(self, outputs: Path, run_id: str, hosts: list[str], steps: list[str]) -> None:
        self.outputs, self.run_id, self.hosts, self.steps = outputs, run_id, hosts, steps
        self.started = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gpurun-progress", daemon=True)

    def start(self) -> None:
        self.started = time.time()
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and show the final state once more."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.show(read_states(self.outputs, self.run_id, self.hosts), final=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.show(read_states(self.outputs, self.run_id, self.hosts), final=False)
            self._stop.wait(REFRESH_S)

    def show(self, states: list[HostState], final: bool) -> None:
        raise NotImplementedError

    def title(self, states: list[HostState]) -> str:
        finished = sum(s.status in ("completed", "failed") for s in states)
        failed = sum(s.status == "failed" for s in states)
        return (f"run {self.run_id}: {finished}/{len(states)} hosts finished, {failed} failed, "
                f"{time.time() - self.started:.0f} s")


class TerminalProgress(_Poller):
    """The table redrawn in place on a terminal; elsewhere, one line per change of a step."""

    def __init__(self, outputs: Path, run_id: str, hosts: list[str], steps: list[str],
                 stream: IO[str] | None = None) -> None:
        super().__init__(outputs, run_id, hosts, steps)
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty()
        self._drawn_lines = 0
        self._seen: dict[tuple[str, str], str] = {}

    def show(self, states: list[HostState], final: bool) -> None:
        if self.live:
            self._redraw(states)
        else:
            self._print_changes(states)

    def _redraw(self, states: list[HostState]) -> None:
        lines = [self.title(states), *text_table(states, self.steps)]
        # Move up over the previous drawing and clear it, then draw the new one.
        prefix = f"\x1b[{self._drawn_lines}F\x1b[J" if self._drawn_lines else ""
        self.stream.write(prefix + "\n".join(lines) + "\n")
        self.stream.flush()
        self._drawn_lines = len(lines)

    def _print_changes(self, states: list[HostState]) -> None:
        for state in states:
            for step, step_state in state.steps.items():
                if self._seen.get((state.host, step)) == step_state.status:
                    continue
                self._seen[(state.host, step)] = step_state.status
                if step_state.status == "skipped":
                    continue
                self.stream.write(f"{state.host}  {step}  {state.cell(step)}\n")
            if state.status == "failed" and self._seen.get((state.host, "")) != "failed":
                self._seen[(state.host, "")] = "failed"
                self.stream.write(f"{state.host}  failed: {state.reason}\n")
        self.stream.flush()


class WidgetProgress(_Poller):
    """The table as an ipywidgets HTML widget, for a run started from a JupyterLab notebook."""

    def __init__(self, outputs: Path, run_id: str, hosts: list[str], steps: list[str]) -> None:
        import ipywidgets
        from IPython.display import display

        super().__init__(outputs, run_id, hosts, steps)
        self.widget = ipywidgets.HTML(value=html_table(self.run_id, [HostState(h) for h in hosts],
                                                       steps))
        display(self.widget)

    def show(self, states: list[HostState], final: bool) -> None:
        self.widget.value = html_table(self.title(states), states, self.steps)


def html_table(title: str, states: list[HostState], steps: list[str]) -> str:
    """Return the host x step table as HTML, each cell colored by its status."""
    head = "".join(f"<th>{html.escape(name)}</th>" for name in ["host", *steps, "status"])
    rows = []
    for state in states:
        cells = [f"<td><b>{html.escape(state.host)}</b></td>"]
        for step in steps:
            text = state.cell(step)
            color = STATUS_COLORS.get(text.split(" ")[0], "inherit")
            cells.append(f'<td style="color:{color}">{html.escape(text)}</td>')
        cells.append(f"<td>{html.escape(_host_status(state))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (f"<div><b>{html.escape(title)}</b><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def summary_lines(records: list[Any], outputs: Path) -> list[str]:
    """Return the end-of-run table: one line per host with status, time, steps and reason."""
    header = ["host", "status", "seconds", "steps", "changed", "uploaded", "reason"]
    rows = []
    for record in records:
        done = sum(s.status in ("completed", "skipped") for s in record.steps)
        total = len(record.requested_steps) or len(record.steps)
        if record.plan_only:
            changed = f"plan {sum(s.planned_changes for s in record.steps)}"
        else:
            changed = str(sum(bool(s.changed) for s in record.steps if s.status == "completed"))
        uploaded = _bytes(sum(getattr(s, "uploaded_bytes", 0) for s in record.steps))
        rows.append([record.host, record.status, f"{record.seconds:.1f}", f"{done}/{total}", changed,
                     uploaded, record.reason or "-"])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join([*(v.ljust(w) for v, w in zip(row, widths)), row[-1]]).rstrip()
             for row in [header, *rows]]
    succeeded = sum(record.succeeded for record in records)
    run_ids = sorted({record.run_id for record in records})
    hosts = sorted({record.host for record in records})
    host_part = hosts[0] if len(hosts) == 1 else "<host>"
    lines.append(f"{succeeded} of {len(records)} hosts succeeded; records in "
                 f"{outputs}/{host_part}/{', '.join(run_ids)}/")
    return lines


def failure_lines(records: list[Any], outputs: Path) -> list[str]:
    """Return, for each failed host, its full reason, the next step and the notebook to read."""
    lines = []
    for record in records:
        if record.succeeded:
            continue
        step = next((s for s in record.steps if s.name == record.failed_step), None)
        error = (step.error if step else "") or record.reason
        next_steps = [line.strip() for line in error.splitlines()
                      if line.strip().startswith("next step:")]
        lines.append(f"{record.host}: {record.reason or record.status}")
        lines += [f"  {line}" for line in next_steps]
        if step and step.notebook:
            lines.append(f"  record: {outputs}/{record.host}/{record.run_id}/{step.notebook}")
    return lines


def _bytes(count: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if count < 1024:
            return f"{count:.0f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return f"{count:.1f} GiB"
