"""`gpurun sandbox`: start, list, reach and remove local sandbox hosts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from gpurun.errors import GpurunError
from gpurun.sandbox.hosts import down, list_hosts, ssh_argv, up
from gpurun.sandbox.image import is_base_current
from gpurun.sandbox.inventory import DEFAULT_INVENTORY
from gpurun.sandbox.rpm_host import PACKAGE_TOOLS

DEFAULT_HOST = "sbx1"


@contextmanager
def _errors_as_click_messages() -> Iterator[None]:
    try:
        yield
    except GpurunError as error:
        raise click.ClickException(str(error)) from error


@click.group()
def sandbox() -> None:
    """Start and stop disposable local Debian hosts reachable over ssh (needs root)."""


@sandbox.command("up")
@click.argument("names", nargs=-1)
@click.option(
    "--no-systemd", is_flag=True, help="Boot without systemd: tini runs sshd as the only service."
)
@click.option(
    "--package-tool",
    type=click.Choice(PACKAGE_TOOLS),
    default="dpkg",
    show_default=True,
    help="The package tool of the host: rpm sets up an rpm database that owns the base "
    "system, as on an RPM distribution, and sets package_format: rpm in the inventory.",
)
@click.option(
    "--inventory",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_INVENTORY,
    show_default=True,
    help="Inventory YAML file that the hosts are added to, keeping its other hosts.",
)
def up_command(
    names: tuple[str, ...], no_systemd: bool, package_tool: str, inventory: Path
) -> None:
    """Boot hosts NAMES (default: sbx1), or return them if already running."""
    init = "none" if no_systemd else "systemd"
    with _errors_as_click_messages():
        if not is_base_current():
            click.echo("building the base image first (debootstrap, about a minute)")
        hosts = up(list(names) or [DEFAULT_HOST], init=init, package_tool=package_tool,
                   inventory=inventory)

    for host in hosts:
        click.echo(
            f"{host.name} is up at {host.address} (init: {host.init}), "
            f"log in with: gpurun sandbox ssh {host.name}"
        )
    click.echo(f"inventory: {inventory.absolute()}")


@sandbox.command("list")
def list_command() -> None:
    """List the sandbox hosts with their address, init and state."""
    with _errors_as_click_messages():
        hosts = list_hosts()
    if not hosts:
        click.echo("no sandbox hosts, start one with: gpurun sandbox up")
        return

    click.echo(f"{'NAME':<24} {'ADDRESS':<15} {'INIT':<8} {'STATE':<8} PID")
    for host in hosts:
        state = "running" if host.running else "stopped"
        click.echo(
            f"{host.name:<24} {host.address:<15} {host.init:<8} {state:<8} {host.pid or '-'}"
        )


@sandbox.command(
    "ssh", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh_command(name: str, command: tuple[str, ...]) -> None:
    """Log in to host NAME, or run COMMAND there.

    COMMAND's words reach the host as one argv, each word quoted. For pipes or redirections,
    pass them to a shell: gpurun sandbox ssh sbx1 sh -c 'dmesg | tail'.
    """
    with _errors_as_click_messages():
        argv = ssh_argv(name, list(command))
    os.execvp(argv[0], argv)


@sandbox.command("down")
@click.argument("names", nargs=-1)
@click.option("--all", "all_hosts", is_flag=True, help="Remove every sandbox host.")
def down_command(names: tuple[str, ...], all_hosts: bool) -> None:
    """Power off and remove hosts NAMES (default: sbx1) with their files and network."""
    if all_hosts and names:
        raise click.UsageError("pass host names or --all, not both")

    with _errors_as_click_messages():
        if all_hosts:
            removed = [host.name for host in list_hosts()]
            down(None)
        else:
            removed = list(names) or [DEFAULT_HOST]
            down(removed)
    click.echo(f"removed: {', '.join(removed) or 'no hosts'}")
