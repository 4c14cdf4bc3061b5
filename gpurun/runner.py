"""Run the runbooks for each host through papermill and write the run's records.

Each host gets outputs/<host>/<run-id>/ with one executed notebook per step and run.json.
Hosts run in separate processes, so one slow or failing host never holds up another. Each
host's steps share one kernel (gpurun.host_kernel), and a host that cannot be logged in to
fails before any step runs, with the reason ssh gave.

run.json is rewritten after each step starts and ends, so a progress display or a report can
read it during the run.
"""

from __future__ import annotations

import calendar
import json
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import papermill

from gpurun.errors import ConnectionFailed
from gpurun.host.connection import HostSpec, probe_login, resolve_login
from gpurun.host_kernel import HostKernel
from gpurun.inventory import InventoryHost
from gpurun.inventory import check_variables as check_inventory_variables
from gpurun.records import write_manifest
from gpurun.runbook import RUN_CONTROL_DIRS
from gpurun.step import SUMMARY_MIME
from gpurun.steps import HOST_STEPS

log = logging.getLogger("gpurun.runner")

KERNEL = "python3"
SSH_CONTROL_DIR_ENV = "GPURUN_SSH_CONTROL_DIR"


@dataclass
class StepRecord:
    number: str
    name: str
    status: str
    changed: bool | None
    planned_changes: int
    seconds: float
    notebook: str
    error: str = ""
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    file_changes: list[dict[str, Any]] = field(default_factory=list)
    operator: dict[str, Any] = field(default_factory=dict)
    started: str = ""
    # Bytes of bundle files copied to the host; 0 when the host held them all already.
    uploaded_bytes: int = 0
    # For a step that --resume skipped: the id of the run in which it completed.
    completed_in: str = ""


@dataclass
class HostRun:
    host: str
    run_id: str
    plan_only: bool
    started: str
    ended: str = ""
    status: str = "running"
    steps: list[StepRecord] = field(default_factory=list)
    # The steps this run covers, in order, including those --resume skipped.
    requested_steps: list[str] = field(default_factory=list)
    # Where a failed run stopped: "connect" or a step name, and why, in one line.
    failed_step: str = ""
    reason: str = ""
    resumed_from: str = ""
    seconds: float = 0.0
    # Parameters the command line set for every host (bundle_dir, ...); they hold no secrets.
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status == "completed"


def runbooks_dir() -> Path:
    """Return the runbooks folder: GPURUN_RUNBOOKS, ./runbooks, or the one beside the package."""
    configured = os.environ.get("GPURUN_RUNBOOKS")
    if configured:
        return Path(configured)
    here = Path.cwd() / "runbooks"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "runbooks"


def declared_parameters(runbooks: Path, steps: list[str]) -> dict[str, set[str]]:
    """Return the parameter names each step's runbook declares in its parameters cell."""
    declared = {}
    for name in steps:
        inspected = papermill.inspect_notebook(str(runbooks / f"{name}.ipynb"))
        declared[name] = set(inspected)
    return declared


def check_variables(host: InventoryHost, declared: dict[str, set[str]], inventory: Path) -> None:
    """Reject a host variable no runbook takes, naming the file and line that set it."""
    check_inventory_variables(host, set().union(*declared.values()))


def run_host(
    host: InventoryHost,
    run_id: str,
    outputs: Path,
    *,
    steps: list[str] | None = None,
    plan_only: bool = False,
    runbooks: Path | None = None,
    overrides: dict[str, Any] | None = None,
    runbook_steps: list[tuple[str, str]] = HOST_STEPS,
    completed_earlier: dict[str, str] | None = None,
    resumed_from: str = "",
) -> HostRun:
    """Run the steps in order on one host; the first failed step ends that host's run.

    completed_earlier maps the steps a --resume skips to the run in which each completed.
    """
    clock = time.monotonic()
    runbooks = runbooks or runbooks_dir()
    completed_earlier = completed_earlier or {}
    wanted = [(n, s) for n, s in runbook_steps if steps is None or s in steps]
    folder = outputs / host.name / run_id
    folder.mkdir(parents=True, exist_ok=True)
    record = HostRun(host=host.name, run_id=run_id, plan_only=plan_only, started=_now(),
                     requested_steps=[s for _, s in wanted], resumed_from=resumed_from,
                     overrides=dict(overrides or {}))
    parameters = {**host.parameters(), **(overrides or {}), "run_id": run_id,
                  "plan_only": plan_only}
    for number, name in wanted:
        if name in completed_earlier:
            record.steps.append(StepRecord(number, name, "skipped", False, 0, 0.0, "",
                                           completed_in=completed_earlier[name]))
    to_run = [(n, s) for n, s in wanted if s not in completed_earlier]
    _write_run_json(folder, record)

    # A host that cannot be logged in to fails here in seconds, before any step runs. The
    # login opens the shared ssh connection that the steps of this run then use, and the
    # kernel boots meanwhile.
    spec = None
    try:
        with _ssh_control_dir(run_id), HostKernel(KERNEL) as kernel:
            if to_run:
                kernel.launch()
            try:
                spec = _login_spec(parameters)
                unreachable = _login_problem(spec)
            except ConnectionFailed as error:
                unreachable = f"connect: {_first_line(str(error))}"
            if unreachable:
                record.status, record.failed_step, record.reason = "failed", "connect", unreachable
            else:
                _run_steps(kernel, record, folder, to_run, parameters, runbooks)
    except KeyboardInterrupt:
        # The records name the step the run stopped in, so that --resume can continue from there.
        _mark_interrupted(record)
        _finish(record, folder, clock)
        raise
    finally:
        _close_shared_connection(spec, run_id)

    log.debug("%s: run %s %s %s", host.name, run_id, record.status, record.reason)
    _finish(record, folder, clock)
    return record


def _finish(record: HostRun, folder: Path, clock: float) -> None:
    record.ended = _now()
    record.seconds = round(time.monotonic() - clock, 2)
    _write_run_json(folder, record)
    write_manifest(folder)


def _mark_interrupted(record: HostRun) -> None:
    """Record a run that the operator interrupted (Ctrl-C) as failed at the step it was in."""
    running = next((step for step in record.steps if step.status == "running"), None)
    name = running.name if running else "connect"
    if running:
        running.status = "failed"
        running.error = "KeyboardInterrupt: interrupted by the operator (Ctrl-C)"
        started = calendar.timegm(time.strptime(running.started, "%Y-%m-%dT%H:%M:%SZ"))
        running.seconds = round(max(0.0, time.time() - started), 2)
    # The kernel's pending messages end in a dead-kernel error that adds nothing to this record.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    record.status, record.failed_step = "failed", name
    record.reason = f"interrupted during {name} (Ctrl-C)"


def _run_steps(kernel: HostKernel, record: HostRun, folder: Path, to_run: list[tuple[str, str]],
               parameters: dict[str, Any], runbooks: Path) -> None:
    """Run the steps in one kernel, recording each in run.json as it starts and ends."""
    declared = declared_parameters(runbooks, [s for _, s in to_run])
    for number, name in to_run:
        notebook = folder / f"{number}-{name}.ipynb"
        record.steps.append(StepRecord(number, name, "running", None, 0, 0.0, notebook.name,
                                       started=_now()))
        _write_run_json(folder, record)
        step_parameters = {k: v for k, v in parameters.items() if k in declared[name]}
        step = _execute(kernel, runbooks / f"{name}.ipynb", notebook, step_parameters,
                        number, name)
        record.steps[-1] = step
        _write_run_json(folder, record)
        log.debug("%s: %s %s (%.1f s)", record.host, name, step.status, step.seconds)
        if step.status != "completed":
            record.status, record.failed_step = "failed", name
            record.reason = f"step {name} failed: {_headline(step.error)}"
            return
    record.status = "completed"


@contextmanager
def _ssh_control_dir(run_id: str) -> Iterator[None]:
    """Set the folder of shared ssh connections for this run, as runbook.start does.

    The kernels inherit it, so the steps reuse the connection the login check opened. An
    operator's own folder (one outside gpurun's per-run folders) is kept.
    """
    previous = os.environ.get(SSH_CONTROL_DIR_ENV)
    if previous and not previous.startswith(RUN_CONTROL_DIRS):
        yield
        return
    os.environ[SSH_CONTROL_DIR_ENV] = f"{RUN_CONTROL_DIRS}{run_id}"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(SSH_CONTROL_DIR_ENV, None)
        else:
            os.environ[SSH_CONTROL_DIR_ENV] = previous


def _close_shared_connection(spec: HostSpec | None, run_id: str) -> None:
    """End this host's shared ssh connection of the run, and the run's folder once it is empty.

    Without this, every run left a folder in /tmp/gpurun-ssh, and its connection lingered for
    ControlPersist. Other hosts of the run keep theirs until they finish.
    """
    folder = Path(f"{RUN_CONTROL_DIRS}{run_id}")
    if spec is None or not folder.is_dir():
        return
    # ssh_argv names the connection's socket inside the folder that _ssh_control_dir sets.
    with _ssh_control_dir(run_id):
        argv = [*spec.ssh_argv(), "-O", "exit"]
    subprocess.run(argv, capture_output=True, timeout=30, check=False)
    try:
        folder.rmdir()
    except OSError:  # another host of the run still uses it
        pass


def _login_spec(parameters: dict[str, Any]) -> HostSpec:
    """Return the login of the host's parameters; raise ConnectionFailed if ssh cannot resolve it."""
    user, port = resolve_login(parameters["address"], parameters.get("user", ""),
                               int(parameters.get("port") or 0))
    return HostSpec(
        name=parameters["host"], address=parameters["address"], port=port, user=user,
        key_file=parameters.get("key_file") or None,
        known_hosts_file=parameters.get("known_hosts_file") or None,
    )


def _login_problem(spec: HostSpec) -> str:
    """Return why the host cannot be logged in to ('connect: no route to host'), or ''."""
    problem = probe_login(spec)
    return f"connect: {problem}" if problem else ""


def run_hosts(
    hosts: list[InventoryHost],
    run_id: str,
    outputs: Path,
    *,
    parallel: int = 1,
    progress: Any = None,
    per_host: dict[str, dict[str, Any]] | None = None,
    **options: Any,
) -> list[HostRun]:
    """Run every host, `parallel` at a time; a host that fails does not stop the others.

    progress, if given, has start() and stop(); it is started once every host is submitted.
    per_host adds keyword arguments of run_host for single hosts (what --resume skips).
    """
    per_host = per_host or {}
    if parallel <= 1 or len(hosts) <= 1:
        if progress is not None:
            progress.start()
        try:
            return [_run_host_safely(host, run_id, outputs, {**options, **per_host.get(host.name,
                                     {})}) for host in hosts]
        finally:
            if progress is not None:
                progress.stop()

    with ProcessPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(run_host, host, run_id, outputs,
                               **{**options, **per_host.get(host.name, {})}) for host in hosts]
        # The display thread starts only now: the pool has forked all its workers.
        if progress is not None:
            progress.start()
        try:
            return [_result(future, host, run_id, outputs, options)
                    for future, host in zip(futures, hosts)]
        finally:
            if progress is not None:
                progress.stop()


def _run_host_safely(host: InventoryHost, run_id: str, outputs: Path,
                     options: dict[str, Any]) -> HostRun:
    try:
        return run_host(host, run_id, outputs, **options)
    except Exception as error:  # a bug or a bad runbook on one host must not end the others
        log.exception("%s: the run failed outside any step", host.name)
        return _crashed(host, run_id, outputs, options, error)


def _result(future: Future[HostRun], host: InventoryHost, run_id: str, outputs: Path,
            options: dict[str, Any]) -> HostRun:
    try:
        return future.result()
    except Exception as error:  # the worker raised or died (BrokenProcessPool)
        log.exception("%s: the run failed outside any step", host.name)
        return _crashed(host, run_id, outputs, options, error)


def _crashed(host: InventoryHost, run_id: str, outputs: Path, options: dict[str, Any],
             error: BaseException) -> HostRun:
    """Record a host whose run raised outside a step, keeping the steps its run.json has."""
    folder = outputs / host.name / run_id
    record = HostRun(host=host.name, run_id=run_id, plan_only=bool(options.get("plan_only")),
                     started=_now(), ended=_now(), status="failed", failed_step="gpurun",
                     reason=f"gpurun failed: {type(error).__name__}: {_first_line(str(error))}")
    existing = folder / "run.json"
    if existing.exists():
        earlier = json.loads(existing.read_text())
        record.started = earlier.get("started", record.started)
        record.steps = [StepRecord(**step) for step in earlier.get("steps", [])]
    folder.mkdir(parents=True, exist_ok=True)
    _write_run_json(folder, record)
    return record


def _execute(kernel: HostKernel, source: Path, target: Path, parameters: dict[str, Any],
             number: str, name: str) -> StepRecord:
    started_at = _now()
    started = time.monotonic()
    error = ""
    try:
        kernel.execute(source, target, parameters)
        status = "completed"
    except papermill.PapermillExecutionError as failure:
        status = "failed"
        error = f"{failure.ename}: {failure.evalue}"
    except Exception as failure:  # noqa: BLE001  the kernel could not start or died
        status = "failed"
        error = f"{type(failure).__name__}: {failure}"
        tail = kernel.stderr_tail()
        if tail:
            error += f"\n  kernel stderr:\n{tail}"
    summary = read_summary(target)
    return StepRecord(
        number=number,
        name=name,
        status=status,
        changed=summary.get("changed"),
        planned_changes=summary.get("planned_changes", 0),
        seconds=round(time.monotonic() - started, 2),
        notebook=target.name,
        error=error,
        outcomes=summary.get("outcomes", []),
        checks=summary.get("checks", []),
        file_changes=summary.get("file_changes", []),
        operator=summary.get("operator", {}),
        started=started_at,
        uploaded_bytes=summary.get("uploaded_bytes", 0),
    )


def read_summary(notebook: Path) -> dict[str, Any]:
    """Return the step summary a runbook stored in its outputs, or {} when it has none."""
    if not notebook.exists():
        return {}
    node = nbformat.read(str(notebook), as_version=4)
    for cell in node.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if SUMMARY_MIME in data:
                return dict(data[SUMMARY_MIME])
    return {}


def _write_run_json(folder: Path, record: HostRun) -> None:
    """Write run.json atomically, so a reader never sees half a file."""
    temporary = folder / ".run.json.tmp"
    temporary.write_text(json.dumps(asdict(record), indent=2) + "\n")
    os.replace(temporary, folder / "run.json")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


def _headline(error: str) -> str:
    """Return an error's first line, with the line after it when the first ends in ':'."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[1]}"
    return lines[0] if lines else ""
