"""The host and parameter picker: sets a runbook's parameters from an Ansible-style inventory.

In JupyterLab the picker lists the inventories under parameters/ and their hosts. Picking a
host sets the notebook's parameter variables as `gpurun run` would for that host: the
parameters cell's values, then the host's inventory variables, then what the person edited in
the picker's form. Under papermill the picker changes nothing, so the parameters cell (and
what papermill injects after it) stays the only source of the values.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitlets import TraitError

from gpurun import display
from gpurun.errors import GpurunError
from gpurun.inventory import CONNECTION_VARIABLES, InventoryHost, load_inventory
from gpurun.widgets.frontend import is_interactive, show_bundle, show_widget, user_namespace

log = logging.getLogger("gpurun.widgets")

# Filled from the inventory's connection variables, so the form shows them read-only.
CONNECTION_PARAMETERS = ("host", "address", "port", "user", "key_file", "known_hosts_file",
                         "become")
# Set by the picker's own dropdown, not by the form.
PICKER_PARAMETERS = ("inventory_file",)
INVENTORY_FOLDER = Path("parameters")


@dataclass
class Choice:
    """The inventory, host and form edits a person chose for one runbook, kept per kernel.

    "Run All" runs the parameters cell again, which would put back its default host, so the
    picker restores this choice instead.
    """

    inventory: str
    host: str
    edits: dict[str, Any] = field(default_factory=dict)


_choices: dict[str, Choice] = {}


def picked_parameters(base: Mapping[str, Any], host: InventoryHost | None,
                      edits: Mapping[str, Any]) -> dict[str, Any]:
    """Return a runbook's parameter values for a host, as `gpurun run` would pass them.

    base contains the parameters cell's values, one per parameter the runbook declares.
    The host's inventory variables override them (variables the runbook does not declare
    are left out, as the runner leaves them out), and the form's edits override both.
    """
    values = dict(base)
    if host is not None:
        values.update({k: v for k, v in host.parameters().items() if k in base})
    values.update({k: v for k, v in edits.items() if k in base})
    return values


def inventory_files(folder: Path, given: str) -> list[str]:
    """Return the inventories to offer: `given` first if it exists, then the YAML files in folder."""
    found = sorted(str(path) for pattern in ("*.yaml", "*.yml") for path in folder.glob(pattern))
    first = [given] if given and Path(given).is_file() else []
    return first + [path for path in found if path not in first]


def host_picker(step: str, inventory_file: str = "") -> HostPicker | None:
    """Show the host and parameter picker in JupyterLab; under papermill, change nothing.

    step names the runbook, whose parameters cell lists the parameters the form offers.
    """
    namespace = user_namespace()
    if namespace is None or not is_interactive():
        show_bundle({"text/plain": "The parameters cell sets the host and the parameters "
                                   "(an unattended run shows no picker)."})
        return None
    from gpurun.runner import declared_parameters, runbooks_dir

    try:
        declared = declared_parameters(runbooks_dir(), [step])[step]
    except (OSError, ValueError) as error:
        log.warning("cannot read the parameters of runbook %s: %s", step, error)
        declared = set()
    base = {name: namespace[name] for name in sorted(declared) if name in namespace}
    return HostPicker(step, inventory_file, base, namespace)


class HostPicker:
    """Dropdowns for the inventory and the host, and a form for the runbook's parameters."""

    def __init__(self, step: str, inventory_file: str, base: dict[str, Any],
                 namespace: dict[str, Any]) -> None:
        import ipywidgets

        self.step = step
        self.base = base
        self.namespace = namespace
        earlier = _choices.get(step)
        self.edits: dict[str, Any] = dict(earlier.edits) if earlier else {}
        self.hosts: dict[str, InventoryHost] = {}
        self._updating = False

        wanted = earlier.inventory if earlier else inventory_file
        files = inventory_files(INVENTORY_FOLDER, wanted)
        # Shown with the other problems once the inventory is read.
        self.missing = f"{wanted} not found. " if wanted and wanted not in files else ""
        self.inventory = ipywidgets.Dropdown(options=files, description="inventory",
                                             value=files[0] if files else None)
        self.host = ipywidgets.Dropdown(options=[], description="host")
        self.connection = ipywidgets.HTML()
        self.message = ipywidgets.HTML()
        self.fields = {name: _field(name, value) for name, value in base.items()
                       if name not in CONNECTION_PARAMETERS + PICKER_PARAMETERS}

        self._load_inventory(preferred=earlier.host if earlier else str(base.get("host", "")))
        self.inventory.observe(self._inventory_changed, names="value")
        self.host.observe(self._host_changed, names="value")
        for name, widget in self.fields.items():
            widget.observe(lambda change, name=name: self._field_changed(name, change),
                           names="value")

        form = ipywidgets.GridBox(list(self.fields.values()), layout=ipywidgets.Layout(
            grid_template_columns="repeat(2, minmax(320px, 1fr))"))
        box = ipywidgets.VBox([ipywidgets.HBox([self.inventory, self.host]), self.message,
                               self.connection, form])
        box.add_class("gpurun-host-picker")
        show_widget(box, f"[host picker: {self.host.value or 'no host'} from "
                         f"{self.inventory.value or 'no inventory'}]")

    @property
    def values(self) -> dict[str, Any]:
        """Return the parameter values the picker has set in the notebook."""
        return picked_parameters(self.base, self.hosts.get(self.host.value or ""), self.edits)

    def _load_inventory(self, preferred: str) -> None:
        """Read the selected inventory and select `preferred`, or its first host."""
        problems = [self.missing] if self.missing else []
        self.missing = ""
        path = Path(self.inventory.value) if self.inventory.value else None
        self.hosts = {}
        if path is None:
            problems.append(f"No inventory in {INVENTORY_FOLDER}/. " + NO_HOSTS_NEXT_STEP)
        else:
            try:
                self.hosts = load_inventory(path)
            except (GpurunError, OSError) as error:
                problems.append(f"Cannot read {path}: {error}")
            else:
                if not self.hosts:
                    problems.append(f"No hosts in {path}. " + NO_HOSTS_NEXT_STEP)
        if not (Path.cwd() / "runbooks").is_dir():
            problems.append(
                f"The kernel runs in {Path.cwd()}, so relative paths such as bundle_dir are "
                f"taken from there. Start JupyterLab with `gpurun lab` to run it in the project "
                f"folder.")
        self.message.value = "".join(
            f"<p style='color:#a00000'>{html.escape(p)}</p>" for p in problems)

        names = sorted(self.hosts)
        chosen = names[0] if names else None
        if preferred in self.hosts:
            chosen = preferred
        self._updating = True
        try:
            self.host.options = names
            self.host.value = chosen
        finally:
            self._updating = False
        self._fill()

    def _fill(self) -> None:
        """Set the notebook's variables from the current choice, and show them in the form."""
        if not self.host.value:
            self.connection.value = ""
            return
        values = self.values
        values["inventory_file"] = self.inventory.value
        self.namespace.update({k: v for k, v in values.items() if k in self.base})
        self._updating = True
        try:
            for name, widget in self.fields.items():
                try:
                    widget.value = values[name]
                except TraitError:  # an inventory value of another type: the form keeps its own
                    log.warning("%s: %s=%r does not fit the form's %s", self.host.value, name,
                                values[name], type(widget.value).__name__)
        finally:
            self._updating = False
        self.connection.value = _connection_table(self.hosts[self.host.value], values)
        _choices[self.step] = Choice(self.inventory.value, self.host.value, dict(self.edits))

    def _inventory_changed(self, change: dict[str, Any]) -> None:
        self._load_inventory(preferred=self.host.value or "")

    def _host_changed(self, change: dict[str, Any]) -> None:
        if not self._updating:
            self._fill()

    def _field_changed(self, name: str, change: dict[str, Any]) -> None:
        if self._updating:
            return
        self.edits[name] = change["new"]
        self._fill()


NO_HOSTS_NEXT_STEP = ("Start a sandbox host with `sudo .venv/bin/gpurun sandbox up`, or write "
                      "an inventory (docs/inventory.md). Until then the parameters cell's "
                      "values stay in use.")


def _field(name: str, value: Any) -> Any:
    """Return the form widget for one parameter, chosen by the type of its value."""
    import ipywidgets

    common = {"description": name, "style": {"description_width": "initial"},
              "layout": ipywidgets.Layout(width="auto")}
    if isinstance(value, bool):
        return ipywidgets.Checkbox(value=value, indent=False, **common)
    if isinstance(value, int):
        return ipywidgets.IntText(value=value, **common)
    return ipywidgets.Text(value="" if value is None else str(value), **common)


def _connection_table(host: InventoryHost, values: Mapping[str, Any]) -> str:
    """Return the connection parameters with the inventory line that set each one, as HTML."""
    rows = []
    for name in CONNECTION_PARAMETERS:
        if name not in values:
            continue
        variables = [v for v, p in CONNECTION_VARIABLES.items() if p == name and v in
                     host.variables]
        source = host.source(variables[0]) if variables else (
            host.source() if name == "host" else "parameters cell")
        value = values[name]
        if name in ("user", "port") and not value:
            value, source = "(ssh's configuration)", "not set in the inventory"
        rows.append((name, value, source))
    return display.table("Connection", ["parameter", "value", "set by"], rows)["text/html"]
