"""The gpurun command line: run, bundle, demo and sandbox."""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path

import click

from gpurun.bundle.build_cli import build_command
from gpurun.errors import GpurunError
from gpurun.fleet import run_inventory
from gpurun.progress import summary_lines
from gpurun.runner import HostRun
from gpurun.sandbox.cli import sandbox
from gpurun.steps import STEP_NAMES

DEMO_HOST = "demo"
DEMO_BUNDLE = Path("bundles/demo")
SANDBOX_INVENTORY = Path("parameters/sandbox.yaml")


def _split(values: tuple[str, ...]) -> list[str]:
    return [item for value in values for item in value.split(",") if item]


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log every command run on a host.")
def main(verbose: bool) -> None:
    """Install Docker and the NVIDIA container runtime on offline GPU hosts."""
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
    with _errors_as_messages():
        records = run_inventory(inventory_file, _split(hosts), _split(groups), _split(steps),
                                parallel, plan_only, outputs, run_id, bundle_dir, resume=resume)
    _print_summary(records, outputs)
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


@main.command("demo")
@click.option("--outputs", default=Path("outputs"), type=click.Path(path_type=Path),
              show_default=True, help="Folder for the executed notebooks.")
def demo_command(outputs: Path) -> None:
    """Build the demo bundle, boot a sandbox host, and run every runbook on it."""
    from gpurun import sandbox as sandboxes
    from gpurun.demo import build_demo_bundle

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


def _print_summary(records: list[HostRun], outputs: Path) -> None:
    click.echo("\n" + "\n".join(summary_lines(records, outputs)))


class _errors_as_messages:
    """Turn a gpurun error into its message and exit status 2, without a traceback."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, tb) -> bool:
        if isinstance(error, GpurunError):
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
        return False


if __name__ == "__main__":
    main()
