"""One Jupyter kernel per host run: papermill executes each step's runbook in it in turn.

Starting a kernel and importing gpurun into it takes 2 to 4 s, as long as many whole steps on
a converged host. So a host's run starts one kernel and runs every runbook in it. Before each
runbook after the first, the kernel's namespace is cleared (`%reset -f`) and its execution
counter set back to 1, so each notebook runs and reads as if it ran alone. Imported modules stay
loaded; that is the time saved.

One kernel client serves every runbook too: a new client waits until the kernel replies on
two channels, which took 0.5 to 1 s per client on a busy machine.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import papermill
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import Engine, papermill_engines

log = logging.getLogger("gpurun.kernel")

ENGINE_NAME = "gpurun-host-kernel"
STARTUP_TIMEOUT_S = 120
RESET_TIMEOUT_S = 60
# A long cell's progress still reaches the notebook file this often.
SAVE_INTERVAL_S = 2.0

# Run silently between two runbooks. Dropping the last step's objects closes its ssh session.
RESET_CODE = (
    "get_ipython().run_line_magic('reset', '-f')\n"
    "__import__('gc').collect()\n"
    "get_ipython().execution_count = 1\n"
)


class HostKernelEngine(Engine):
    """A papermill engine that runs a notebook in a kernel the caller started and keeps."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, *, km: AsyncKernelManager,
                                 kc: AsyncKernelClient, log_output: bool = False,
                                 start_timeout: int = 60, execution_timeout: float | None = None,
                                 **_ignored: Any) -> Any:
        client = PapermillNotebookClient(
            nb_man, km=km, kernel_name=kernel_name, log=logging.getLogger("papermill"),
            log_output=log_output, startup_timeout=start_timeout, timeout=execution_timeout,
        )
        # With a client already set, nbclient neither starts a kernel nor waits for one.
        client.kc = kc
        # papermill rewrites the whole notebook as each cell starts and ends, which costs more
        # than most cells of a step. So between cells it saves at most every few seconds. The
        # final save (notebook_complete, after this returns or raises) always happens.
        full_save = nb_man.save
        nb_man.save = _at_most_every(SAVE_INTERVAL_S, full_save)
        try:
            return client.execute()
        finally:
            del nb_man.save


papermill_engines.register(ENGINE_NAME, HostKernelEngine)


def _at_most_every(interval_s: float, save: Callable[[], None]) -> Callable[..., None]:
    """Return a save that does nothing when the last save is less than interval_s old."""
    last = time.monotonic()

    def throttled(**_ignored: Any) -> None:
        nonlocal last
        if time.monotonic() - last >= interval_s:
            save()
            last = time.monotonic()

    return throttled


class HostKernel:
    """A kernel that runs the runbooks of one host's run, one after another."""

    def __init__(self, kernel_name: str = "python3", cwd: Path | None = None) -> None:
        self.kernel_name = kernel_name
        self.cwd = cwd or Path.cwd()
        # Kernels talk over Unix sockets in a folder of their own. With TCP, kernels started at
        # the same moment by parallel hosts can pick the same free port, and one fails to bind.
        self.socket_dir = tempfile.TemporaryDirectory(prefix="gpurun-kernel-")
        self.manager = AsyncKernelManager(kernel_name=kernel_name, transport="ipc",
                                          ip=str(Path(self.socket_dir.name) / "kernel"))
        # The kernel's own stderr (start-up warnings, a crash) goes here, not to the terminal.
        self.log_file = tempfile.TemporaryFile(mode="w+", prefix="gpurun-kernel-")  # noqa: SIM115
        self.client: AsyncKernelClient | None = None
        self._notebooks_run = 0

    def execute(self, source: Path, target: Path, parameters: dict[str, Any]) -> None:
        """Execute the runbook `source` with `parameters` into `target`, as papermill does.

        Raises papermill.PapermillExecutionError when a cell fails, like papermill.
        """
        if self.client is None:
            self.client = self._start()
        elif self._notebooks_run:
            self._reset(self.client)
        self._notebooks_run += 1
        papermill.execute_notebook(
            str(source), str(target), parameters=parameters, kernel_name=self.kernel_name,
            engine_name=ENGINE_NAME, km=self.manager, kc=self.client, progress_bar=False,
            log_output=False, cwd=str(self.cwd), start_timeout=STARTUP_TIMEOUT_S,
        )

    def stderr_tail(self, lines: int = 20) -> str:
        """Return the last lines the kernel wrote to stderr, to explain a kernel that died."""
        self.log_file.seek(0)
        return "\n".join(self.log_file.read().splitlines()[-lines:])

    def close(self) -> None:
        """Shut the kernel down (if it started) and drop its log."""
        if self.client is not None:
            self.client.stop_channels()
        if self.manager.has_kernel:
            try:
                # The records are written by now and the kernel keeps nothing worth a
                # graceful exit, which took 2 to 3 s.
                run_sync(self.manager.shutdown_kernel)(now=True)
            except Exception:  # a dead kernel cannot be shut down cleanly: go on
                log.debug("kernel shutdown failed", exc_info=True)
        self.log_file.close()
        self.socket_dir.cleanup()

    def __enter__(self) -> HostKernel:  # noqa: PYI034
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def launch(self) -> None:
        """Start the kernel process without waiting for it, so it boots while the caller works."""
        if self.manager.has_kernel:
            return
        # An in-memory history, as nbclient uses, so parallel kernels share no sqlite file.
        run_sync(self.manager.start_kernel)(
            extra_arguments=["--HistoryManager.hist_file=:memory:"], cwd=str(self.cwd),
            stderr=self.log_file, stdout=self.log_file,
        )

    def _start(self) -> AsyncKernelClient:
        self.launch()
        client = self.manager.client()
        client.start_channels()
        # As nbclient does, after start_channels, which sets it: no cell can ask for input.
        # The runbooks check it to learn that no person is there to click a button.
        client.allow_stdin = False
        run_sync(client.wait_for_ready)(timeout=STARTUP_TIMEOUT_S)
        return client

    def _reset(self, client: AsyncKernelClient) -> None:
        reply = run_sync(client.execute_interactive)(
            RESET_CODE, silent=True, store_history=False, timeout=RESET_TIMEOUT_S)
        if reply["content"].get("status") != "ok":
            raise RuntimeError(f"clearing the kernel between runbooks failed: {reply['content']}")
