"""Write the runbooks in runbooks/ from the cell lists below.

The notebooks are the product; this script keeps their shared cells (parameters, the
connection, the record) identical. Run it after editing, and commit both.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from bundle_runbook import bundle_runbook  # tools/bundle_runbook.py, beside this script
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"

PARAMETERS_NOTE = (
    "Which host, how to reach it, and which bundle. Papermill and `gpurun run` replace these "
    "values with the host's inventory variables; in JupyterLab the host picker below does. "
    "Secrets never go here: the ssh key is named by its path. With `become`, a sudo password "
    "(where sudo requires one) is read from the environment variable named by "
    "`sudo_password_env`, or asked for."
)

# One parameter a line; the comment after each is the help text papermill and the picker show.
CONNECTION = '''host = "sbx1"  # the host's name in the inventory and under outputs/
address = ""  # address or ssh alias to log in to
port = 22  # ssh port; 0 takes ssh's configuration
user = "root"  # ssh login; empty takes ssh's configuration
key_file = ""  # path of the ssh private key
known_hosts_file = ""  # ssh known_hosts file for this host
become = False  # run commands as root through sudo
sudo_password_env = ""  # name of the environment variable with the sudo password
bundle_dir = "bundles/demo"  # the bundle folder on this control node
bin_dir = "/usr/bin"  # folder on the host for Docker's binaries
run_id = ""  # id of this run; empty makes a new one
plan_only = False  # show what would change, change nothing
auto_apply = False  # in JupyterLab, apply without waiting for the Apply button
inventory_file = "parameters/sandbox.yaml"  # the inventory the JupyterLab host picker opens'''

PICKER = (("In JupyterLab, pick the host and change parameters here: the picker sets the "
           "variables above for the cells below and keeps the choice when you run all cells "
           "again. An unattended run (papermill, `gpurun run`) shows no picker."),
          'from gpurun import widgets\n\npicker = widgets.host_picker("{name}", inventory_file)')

START = '''from gpurun import runbook
from gpurun.steps import {module}
from gpurun.steps.common import open_bundle

step = runbook.start(
    "{name}", host=host, address=address, port=port, user=user, key_file=key_file,
    known_hosts_file=known_hosts_file, become=become, sudo_password_env=sudo_password_env,
    run_id=run_id, plan_only=plan_only, auto_apply=auto_apply, bundle_dir=bundle_dir,
    bin_dir=bin_dir{extra},
)'''

BUNDLE = ("Check every file of the bundle against its manifest (size and SHA-256) before "
          "anything is uploaded.", "manifest = open_bundle(bundle_dir)")

FINISH = ("Store the record of this step: the file changes with their diffs, every command "
          "with its output, and a summary the run report reads.", "summary = step.finish()")


def runbook(name: str, module: str, intro: str, parameters: dict[str, str],
            cells: list[tuple[str, str]], *, with_bundle: bool = True) -> nbformat.NotebookNode:
    extra_lines = "\n".join(f"{key} = {value}" for key, value in parameters.items())
    extra_args = "".join(f", {key}={key}" for key in parameters)
    notebook = new_notebook()
    notebook.cells.append(new_markdown_cell(intro))
    notebook.cells.append(new_markdown_cell(PARAMETERS_NOTE))
    source = CONNECTION + ("\n" + extra_lines if extra_lines else "")
    notebook.cells.append(new_code_cell(source, metadata={"tags": ["parameters"]}))
    notebook.cells.append(new_markdown_cell(PICKER[0]))
    notebook.cells.append(new_code_cell(PICKER[1].format(name=name)))
    notebook.cells.append(new_markdown_cell("Connect to the host and open this step's record."))
    notebook.cells.append(new_code_cell(START.format(name=name, module=module, extra=extra_args)))
    for markdown, code in [*([BUNDLE] if with_bundle else []), *cells, FINISH]:
        notebook.cells.append(new_markdown_cell(markdown))
        notebook.cells.append(new_code_cell(code))
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


STEPS = {
    "preflight": runbook(
        "preflight", "preflight",
        "# Preflight\n\nConnects to the host and reads its facts: CPU architecture, OS and "
        "package format, init system, the kernel and the modules Docker needs, cgroups, "
        "iptables, SELinux, free disk for the bundle and dockerd's data root, the clock "
        "against this control node, an existing Docker, dockerd's configuration (its config "
        "file and its command line together) and the NVIDIA driver. It judges each one as "
        "ok, warning or blocking for this bundle. Rootless Docker (`rootless_user`) is not "
        "supported and blocks.\n\n**Changes:** nothing. **Undo:** nothing to undo.",
        {"package_format": '"auto"', "replace_existing": "False", "rootless_user": '""'},
        [("Read the host's system facts.", "facts = preflight.gather(step, package_format)"),
         ("Judge the facts against the bundle: each finding is ok, warning or blocking.",
          "findings = preflight.judge(step, facts, manifest, rootless_user=rootless_user)")],
    ),
    "docker-binaries": runbook(
        "docker-binaries", "docker_binaries",
        "# Docker binaries\n\nUploads Docker's static tarball (only if the host does not hold "
        "it already), checks its checksum and its members, unpacks it into this run's staging "
        "folder and installs each binary as root-owned mode 0755 into `bin_dir`, replacing a "
        "file only through a temporary name.\n\n**Changes:** the eight Docker binaries in "
        "`bin_dir`. **Undo:** the rollback runbook restores the backups kept under "
        "`/var/lib/gpurun/runs/<run id>/backup` on the host.",
        {"replace_existing": "False"},
        [("Read the installed binaries (checksum, mode, owner) and any packaged Docker.",
          "installed = docker_binaries.gather(step, manifest, bin_dir)"),
         ("Plan: install each binary whose checksum differs from the bundle's, fix modes.",
          "actions = docker_binaries.plan(\n    step, manifest, bundle_dir, bin_dir, installed,"
          " replace_existing=replace_existing\n)"),
         ("Apply the plan (in a plan-only run, this shows it and changes nothing).",
          "outcomes = step.apply(actions)"),
         ("Verify: each binary has the bundle's checksum, mode 0755, owner root, and runs.",
          "step.verify(docker_binaries.verify(step, manifest, bin_dir))")],
    ),
    "docker-service": runbook(
        "docker-service", "docker_service",
        "# Docker service\n\nCreates the `docker` system group (docker.socket needs it), "
        "writes containerd.service, docker.socket and docker.service into "
        "/etc/systemd/system naming the binaries by absolute path, checks them with "
        "`systemd-analyze verify`, then enables and starts them and waits for the Docker API."
        "\n\nOn a host without systemd it starts containerd and dockerd as background "
        "processes instead, with pid files under /run/gpurun and logs under /var/log/gpurun; "
        "a daemon that must restart gets SIGTERM and a wait (SIGKILL after the wait only with "
        "`kill_after_timeout`). Nothing starts them again after a reboot there."
        "\n\n**Changes:** the group, three unit files, their enabled and running state (or "
        "the background daemons). **Undo:** the rollback runbook.",
        {"kill_after_timeout": "False"},
        [("Read the init system, the docker group and each unit's (or daemon's) state.",
          "units = docker_service.gather(step)"),
         ("Plan the group, the units, daemon-reload, enable and start.",
          "actions = docker_service.plan(\n    step, bin_dir, units, "
          "kill_after_timeout=kill_after_timeout\n)"),
         ("Apply the plan.", "outcomes = step.apply(actions)"),
         ("Verify: units enabled and active (or daemons running from bin_dir), the socket "
          "owned by the docker group, the API answers.",
          "step.verify(docker_service.verify(step, bin_dir))")],
    ),
    "nvidia-toolkit": runbook(
        "nvidia-toolkit", "nvidia_toolkit",
        "# NVIDIA Container Toolkit\n\nInstalls the bundle's toolkit packages in dependency "
        "order in one dpkg or rpm transaction. Dependency checks stay on unless "
        "`allow_forced_install` is set. A package that would replace daemon.json is rejected."
        "\n\n**Changes:** the toolkit packages. **Undo:** the rollback runbook removes the "
        "packages the run installed.",
        {"package_format": '"auto"', "allow_forced_install": "False"},
        [("Read the host's package format and the installed toolkit versions.",
          "installed = nvidia_toolkit.gather(step, manifest, package_format)"),
         ("Plan: install the whole set when any package is missing or at another version.",
          "actions = nvidia_toolkit.plan(\n    step, manifest, bundle_dir, installed, "
          "allow_forced_install=allow_forced_install\n)"),
         ("Apply the plan.", "outcomes = step.apply(actions)"),
         ("Verify: every package at the bundle's version, the runtime binaries answer.",
          "step.verify(nvidia_toolkit.verify(step, manifest))")],
    ),
    "runtime": runbook(
        "runtime", "runtime",
        "# The nvidia runtime\n\nReads dockerd's effective command line (the unit, every "
        "drop-in and the environment files it expands) and its config file, then registers "
        "the `nvidia` runtime, and makes it the default if `set_default_runtime` is set (else "
        "the default goes back to runc). `runtime_config` picks the one place: `daemon.json` "
        "(merged, every other key kept) or `flags` (`--add-runtime` and `--default-runtime` "
        "in gpurun's drop-in docker.service.d/zz-gpurun-runtime.conf); switching empties the "
        "other place. The result is checked against dockerd's rules (`dockerd --validate` "
        "where dockerd has it) before anything is written, applied with a reload where "
        "dockerd can reload it and a restart where it must, and confirmed with `docker info`. "
        "If dockerd does not show it, the old files are put back and dockerd restarted with "
        "them.\n\n**Changes:** daemon.json and gpurun's drop-in. **Undo:** the rollback "
        "runbook restores the backups.",
        {"set_default_runtime": "True", "runtime_config": '"daemon.json"', "rootless_user": '""'},
        [("Read dockerd's command line, its config file and what `docker info` reports.",
          "facts = runtime.gather(step)"),
         ("Plan the change: what moves where, checked against dockerd's rules.",
          "actions = runtime.plan(\n    step, facts, set_default=set_default_runtime, "
          "runtime_config=runtime_config,\n    rootless_user=rootless_user,\n)"),
         ("Apply: validate, write the files atomically after a backup, reload or restart "
          "dockerd, confirm with `docker info`.",
          "outcomes = step.apply(actions)"),
         ("Verify with `docker info`.",
          "step.verify(runtime.verify(step, set_default=set_default_runtime))")],
    ),
    "verify": runbook(
        "verify", "verify",
        "# Verify\n\nChecks the end state: `docker info` lists the nvidia runtime (and the "
        "default), the runtime binaries answer, a container from the bundle's test image runs "
        "through the default runtime, and, where the host has an NVIDIA driver, a container "
        "requesting all GPUs sees them.\n\n**Changes:** loads the test image into Docker. "
        "**Undo:** `docker rmi` of the test image.",
        {"set_default_runtime": "True"},
        [("Read the driver state and whether the test image is loaded.",
          "driver = verify.gather(step, manifest)"),
         ("Plan: load the test image from the bundle if Docker does not have it.",
          "actions = verify.plan(step, manifest, bundle_dir)"),
         ("Apply the plan.", "outcomes = step.apply(actions)"),
         ("Run the checks.",
          "step.verify(verify.verify(step, manifest, driver, set_default=set_default_runtime))")],
    ),
}


# Not one of the steps of a run: `gpurun rollback` runs it alone, and it needs no bundle.
STEPS["rollback"] = runbook(
    "rollback", "rollback",
    "# Rollback\n\nUndoes one earlier run on this host. It reads that run's journal "
    "(`/var/lib/gpurun/runs/<undo_run_id>/changes.jsonl` on the host), stops and disables the "
    "units the run started or enabled, puts back every file the run modified or removed from "
    "the backups it took (checking each backup's SHA-256 against the journal first), removes "
    "the files it created, removes and purges the packages it installed, deletes the groups it "
    "created, then restarts the services that keep running. A file changed after that run "
    "stops the rollback before anything changes, unless `overwrite_later_changes` is set.\n\n"
    "**Changes:** what the undone run changed, back to the state before it. What the run did "
    "not write itself stays: gpurun's folder /var/lib/gpurun (bundle files, journals, "
    "backups) and the state dockerd made (/var/lib/docker, /etc/docker/key.json). **Undo:** "
    "this run is journalled like any other, with backups of what it replaced.",
    {"undo_run_id": '""', "overwrite_later_changes": "False"},
    [("Read the journal of the run to undo and the current state of everything it changed.",
      "journal = rollback.gather(step, undo_run_id)"),
     ("Plan: stop and disable units, restore or remove files, remove packages and groups, "
      "restart what keeps running.",
      "actions = rollback.plan(\n    step, journal, overwrite_later_changes="
      "overwrite_later_changes\n)"),
     ("Apply the plan (in a plan-only run, this shows it and changes nothing).",
      "outcomes = step.apply(actions)"),
     ("Verify: every file has its SHA-256, mode and owner from before the run, created files "
      "are gone, packages removed, units stopped and disabled, groups deleted.",
      "step.verify(rollback.verify(step, journal))")],
    with_bundle=False,
)


STEPS["preflight"].cells += [
    new_markdown_cell("Stop here if any finding blocks: nothing has been changed on the host."),
    new_code_cell("preflight.require_no_blocking(step, findings)"),
]


def main() -> None:
    # The bundle runbook runs on the connected machine, so it has no host cells.
    notebooks = {**STEPS, "bundle": bundle_runbook()}
    for name, notebook in notebooks.items():
        nbformat.validate(notebook)
        nbformat.write(notebook, RUNBOOKS / f"{name}.ipynb")
        print(f"wrote runbooks/{name}.ipynb")


if __name__ == "__main__":
    main()
