"""The gpurun command line: run, report, rollback, bundle, demo and sandbox."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gpurun.bundle.build_cli import build_command
from gpurun.errors import GpurunError, RunInterrupted
from gpurun.progress import failure_lines, summary_lines
from gpurun.sandbox.cli import sandbox
from gpurun.steps import STEP_NAMES

if TYPE_CHECKING:
    from gpurun.runner import HostRun

DEMO_HOST = "demo"
DEMO_BUNDLE = Path("bundles/demo")
SANDBOX_INVENTORY = Path("parameters/sandbox.yaml")
# The shell convention for a command ended by SIGINT (128 + 2).
INTERRUPTED_EXIT = 130


def _split(values: tuple[str, ...]) -> list[str]:
    return [item for value in values for item in value.split(",") if item]


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log every command run on a host.")
def main(verbose: bool) -> None:
    """Install Docker and the NVIDIA container runtime on offline GPU hosts."""
    # jsonschema, which nbformat and papermill import, also imports rfc3987-syntax where it is
    # installed (JupyterLab's dependencies bring it), and that package builds a parser on
    # import: 2.8 s of every run on a 2-core machine. Notebook schemas use no IRI formats, so
    # this process does without it. The commands import papermill only after this line.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")


main.add_command(sandbox)


@main.command("run")
@click.option("--inventory", "inventory_file", required=True, type=click.Path(path_type=Path),
              help="Ansible-style YAML inventory of the hosts.")
@click.option("--hosts", multiple=True, help="Hosts to run, comma-separated (default: all).")
@click.option("--groups", multiple=True, help="Inventory groups to run, comma-separated.")
@click.option("--steps", multiple=True, help=f"Steps to run, comma-separated, from: "
              f"{', '.join(STEP_NAMES)} (default: all, in that order).")
@click.option("--parallel", default=1, show_default=True, help="Hosts to run at the same time.")
@click.option("--plan", "plan_only", is_flag=True, help="Show what each step would change; "
              "change nothing. The run id ends in -plan.")
@click.option("--resume", default="", metavar="RUN-ID", help="Continue each host that failed "
              "in run RUN-ID from its failed step, under a new run id.")
@click.option("--outputs", default=Path("outputs"), type=click.Path(path_type=Path),
              show_default=True, help="Folder for the executed notebooks and run.json files.")
@click.option("--run-id", default="", help="Id of this run (default: a new time-based id).")
@click.option("--bundle", "bundle_dir", default=None, help="Bundle folder for every host "
              "(default: each host's bundle_dir variable).")
def run_command(inventory_file: Path, hosts: tuple[str, ...], groups: tuple[str, ...],
                steps: tuple[str, ...], parallel: int, plan_only: bool, resume: str,
                outputs: Path, run_id: str, bundle_dir: str | None) -> None:
    """Run the runbooks for each host of the inventory through papermill.

    Exit status: 0 when every host succeeded, 1 when any host failed, 2 when the run could not
    start (an invalid inventory, option or bundle).
    """
    from gpurun.fleet import run_inventory

    with _errors_as_messages():
        records = run_inventory(inventory_file, _split(hosts), _split(groups), _split(steps),
                                parallel, plan_only, outputs, run_id, bundle_dir, resume=resume)
    _print_summary(records, outputs, resume_from=inventory_file)
    sys.exit(0 if all(r.succeeded for r in records) else 1)


@main.group()
def bundle() -> None:
    """Build and check offline bundles."""


@bundle.command("demo")
@click.argument("out_dir", default=str(DEMO_BUNDLE), type=click.Path(path_type=Path))
@click.option("--package-format", type=click.Choice(["deb", "rpm"]), default="deb",
              show_default=True, help="Format of the stand-in toolkit packages.")
def bundle_demo(out_dir: Path, package_format: str) -> None:
    """Build the demo bundle from Debian's Docker packages and stand-in NVIDIA packages."""
    from gpurun.demo import build_demo_bundle

    with _errors_as_messages():
        manifest = build_demo_bundle(out_dir, package_format=package_format)
    click.echo(f"bundle {out_dir}: Docker {manifest.docker_version}, toolkit "
               f"{manifest.toolkit_version} (stand-in), {len(manifest.files)} files")


@bundle.command("verify")
@click.argument("bundle_dir", type=click.Path(path_type=Path))
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Also check the bundle's signed repository index with this public key "
                   "(one you trust, not the copy inside the bundle).")
def bundle_verify(bundle_dir: Path, key_file: Path | None) -> None:
    """Check every file of a bundle against its manifest and its signed index."""
    from gpurun.bundle.build_cli import check_with_key
    from gpurun.bundle.manifest import require_valid_bundle

    with _errors_as_messages():
        manifest = require_valid_bundle(bundle_dir)
        if key_file is not None:
            check_with_key(bundle_dir, key_file)
    click.echo(f"bundle {bundle_dir}: all {len(manifest.files)} files match the manifest")


bundle.add_command(build_command)


@main.command("lab")
@click.argument("folder", default=Path("."), type=click.Path(file_okay=False, path_type=Path))
@click.option("--ip", default="127.0.0.1", show_default=True,
              help="Address JupyterLab listens on. Keep loopback unless others must reach it: "
                   "the runbooks can change hosts.")
@click.option("--port", default=8888, show_default=True,
              help="Port JupyterLab listens on; the next free port if it is taken.")
@click.option("--no-browser", is_flag=True, help="Print the URL instead of opening a browser.")
@click.option("--runbook", default="preflight", show_default=True,
              help="Runbook to open first.")
def lab_command(folder: Path, ip: str, port: int, no_browser: bool, runbook: str) -> None:
    """Open JupyterLab on FOLDER's runbooks (default: here), to run them cell by cell.

    Kernels run in FOLDER, so relative paths such as bundle_dir and parameters/ are taken from
    there, as `gpurun run` takes them. A FOLDER without runbooks/ gets a copy of gpurun's. The
    URL with its login token is printed; the token JUPYTER_TOKEN sets is used if set.
    """
    from gpurun.lab import start_lab

    with _errors_as_messages():
        start_lab(folder, ip=ip, port=port, open_browser=not no_browser, runbook=runbook)


@main.command("demo")
@click.option("--outputs", default=Path("outputs"), type=click.Path(path_type=Path),
              show_default=True, help="Folder for the executed notebooks.")
def demo_command(outputs: Path) -> None:
    """Build the demo bundle, boot a sandbox host, and run every runbook on it."""
    from gpurun import sandbox as sandboxes
    from gpurun.demo import build_demo_bundle
    from gpurun.fleet import run_inventory

    with _errors_as_messages():
        click.echo("building the demo bundle (cached after the first time)...")
        build_demo_bundle(DEMO_BUNDLE)
        click.echo(f"booting sandbox host {DEMO_HOST} (the base image is cached after the "
                   f"first time)...")
        (host,) = sandboxes.up([DEMO_HOST], inventory=SANDBOX_INVENTORY)
        click.echo(f"running the runbooks on {DEMO_HOST} ({host.address})...")
        records = run_inventory(SANDBOX_INVENTORY, [DEMO_HOST], [], [], 1, False, outputs, "",
                                str(DEMO_BUNDLE))
    _print_summary(records, outputs)
    click.echo(f"reach the host with: gpurun sandbox ssh {DEMO_HOST}")
    click.echo(f"remove it with:      gpurun sandbox down {DEMO_HOST}")
    sys.exit(0 if all(r.succeeded for r in records) else 1)


@main.command("report")
@click.argument("outputs", default=Path("outputs"), type=click.Path(path_type=Path))
@click.option("--check", "check_only", is_flag=True,
              help="Only compare every run folder with its SHA256SUMS manifest and list the "
                   "records edited after the run; exit status 1 if any.")
def report_command(outputs: Path, check_only: bool) -> None:
    """Write OUTPUTS/index.html: every run per host and step, linked to its notebook as HTML."""
    from gpurun.records import check_outputs, run_folders
    from gpurun.report import write_report

    if check_only:
        with _errors_as_messages():
            problems = check_outputs(outputs)
        for problem in problems:
            click.echo(problem.describe(outputs))
        folders = len(run_folders(outputs))
        if problems:
            click.echo(f"{len(problems)} problem(s) in the records under {outputs}", err=True)
            sys.exit(1)
        click.echo(f"all {folders} run record(s) under {outputs} match their manifests")
        return
    with _errors_as_messages():
        report = write_report(outputs)
    edited = sum(1 for row in report.runs if row.problems)
    click.echo(f"wrote {report.index}: {len(report.runs)} run(s), {report.rendered} notebook(s)")
    if edited:
        click.echo(f"{edited} run(s) do not match their manifest: see `gpurun report --check "
                   f"{outputs}`", err=True)


@main.command("rollback")
@click.option("--run", "undo_run_id", required=True, help="Id of the run to undo.")
@click.option("--inventory", "inventory_file", required=True, type=click.Path(path_type=Path),
              help="Ansible-style YAML inventory of the hosts.")
@click.option("--hosts", multiple=True, help="Hosts to roll back, comma-separated (default: "
              "the hosts whose records under --outputs show that the run changed them).")
@click.option("--groups", multiple=True, help="Inventory groups to roll back, comma-separated.")
@click.option("--parallel", default=1, show_default=True, help="Hosts to run at the same time.")
@click.option("--plan", "plan_only", is_flag=True, help="Show what would be restored; change "
              "nothing.")
@click.option("--outputs", default=Path("outputs"), type=click.Path(path_type=Path),
              show_default=True, help="Folder with the run's records; the rollback's records "
                                      "go there too.")
@click.option("--overwrite-later-changes", is_flag=True,
              help="Restore files even where they changed after the run.")
def rollback_command(undo_run_id: str, inventory_file: Path, hosts: tuple[str, ...],
                     groups: tuple[str, ...], parallel: int, plan_only: bool, outputs: Path,
                     overwrite_later_changes: bool) -> None:
    """Undo what one run changed on its hosts, from the journal and backups it left there."""
    from gpurun.rollback_run import rollback_inventory

    with _errors_as_messages():
        records = rollback_inventory(
            inventory_file, undo_run_id, _split(hosts), _split(groups), parallel=parallel,
            plan_only=plan_only, outputs=outputs, overwrite_later_changes=overwrite_later_changes)
    _print_summary(records, outputs)
    sys.exit(0 if all(r.succeeded for r in records) else 1)


def _print_summary(records: list[HostRun], outputs: Path, resume_from: Path | None = None
                   ) -> None:
    """Print the summary table, then what each failed host needs and how to continue."""
    click.echo("\n" + "\n".join(summary_lines(records, outputs)))
    failures = failure_lines(records, outputs)
    if failures:
        click.echo("\n" + "\n".join(failures))
    failed_runs = sorted({r.run_id for r in records if not r.succeeded and not r.plan_only})
    if resume_from is not None and failed_runs:
        outputs_option = "" if outputs == Path("outputs") else f" --outputs {outputs}"
        click.echo(f"continue the failed hosts with: gpurun run --inventory {resume_from}"
                   f"{outputs_option} --resume {failed_runs[0]}")


class _errors_as_messages:
    """Turn a gpurun error into its message and exit status 2, without a traceback."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, tb) -> bool:
        if isinstance(error, RunInterrupted):
            click.echo(str(error), err=True)
            sys.exit(INTERRUPTED_EXIT)
        if isinstance(error, GpurunError):
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
        return False


if __name__ == "__main__":
    main()
