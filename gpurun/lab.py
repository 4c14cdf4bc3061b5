"""`gpurun lab`: JupyterLab on the runbooks, listening on loopback, kernels in the project folder.

The runbooks take relative paths (bundle_dir, inventory_file) from the folder they run in, as
`gpurun run` and papermill do. JupyterLab starts a kernel in the notebook's own folder, which
would be runbooks/, so `gpurun lab` starts every kernel in the project folder instead.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

from gpurun.errors import GpurunError

log = logging.getLogger("gpurun.lab")

LOOPBACK = ("127.0.0.1", "::1", "localhost")

# Keep JupyterLab from fetching news, update notices and extension lists from the internet:
# the control node of an offline network cannot reach them, and should not try.
OFFLINE_OPTIONS = [
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
    "--LabApp.extension_manager=readonly",
]


class ProjectKernelManager(AsyncMappingKernelManager):
    """Starts every kernel in the server's root folder rather than beside the notebook."""

    def cwd_for_path(self, path: str, **kwargs: object) -> str:
        return str(self.root_dir)


def packaged_runbooks() -> Path:
    """Return the runbooks folder that comes with this gpurun."""
    return Path(__file__).resolve().parent.parent / "runbooks"


def prepare_folder(folder: Path) -> str:
    """Copy the runbooks into folder/runbooks unless it has them; return what was done."""
    target = folder / "runbooks"
    if target.is_dir():
        return f"runbooks: {target}"
    source = packaged_runbooks()
    if not source.is_dir():
        raise GpurunError(f"runbooks not found in {folder} nor at {source}\n"
                          f"  next step: run `gpurun lab` in the gpurun folder, or pass it")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target)
    (folder / "parameters").mkdir(exist_ok=True)
    return f"copied the runbooks from {source} to {target}"


def lab_argv(folder: Path, ip: str, port: int, open_browser: bool, runbook: str) -> list[str]:
    """Return the command line that starts JupyterLab on `folder`, showing `runbook`."""
    return [
        sys.executable, "-m", "jupyterlab",
        f"--ServerApp.root_dir={folder}",
        f"--ServerApp.ip={ip}",
        f"--ServerApp.port={port}",
        f"--ServerApp.open_browser={open_browser}",
        "--ServerApp.kernel_manager_class=gpurun.lab.ProjectKernelManager",
        f"--LabApp.default_url=/lab/tree/runbooks/{runbook}.ipynb",
        # Jupyter rejects root without this flag, and control nodes that use sandbox hosts run
        # as root.
        f"--ServerApp.allow_root={os.geteuid() == 0}",
        *OFFLINE_OPTIONS,
    ]


def kernel_problem() -> str:
    """Return why the runbooks' kernel (python3) would not find this gpurun, or ''."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        return "no Jupyter kernel named python3: reinstall gpurun with its dependencies"
    program = spec.argv[0]
    if program in ("python", "python3", "{python}") or Path(program).resolve() == Path(
            sys.executable).resolve():
        return ""
    return (f"the Jupyter kernel python3 runs {program}, not {sys.executable} where gpurun is "
            f"installed, so the runbooks would not find gpurun. That kernel spec is in "
            f"{spec.resource_dir}: remove or rename it")


def start_lab(folder: Path, *, ip: str, port: int, open_browser: bool, runbook: str) -> None:
    """Replace this process with JupyterLab on `folder`; return only by raising an error."""
    folder = folder.resolve()
    problem = kernel_problem()
    if problem:
        raise GpurunError(problem)
    runbook = runbook.removesuffix(".ipynb")
    print(prepare_folder(folder), flush=True)
    if not (folder / "runbooks" / f"{runbook}.ipynb").is_file():
        raise GpurunError(f"runbook {runbook} not found in {folder / 'runbooks'}")
    if ip not in LOOPBACK:
        log.warning("JupyterLab listens on %s: anyone who reaches it and has the token can "
                    "change your hosts through the runbooks", ip)
    argv = lab_argv(folder, ip, port, open_browser, runbook)
    os.chdir(folder)
    os.execv(argv[0], argv)
