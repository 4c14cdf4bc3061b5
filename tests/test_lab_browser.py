"""A runbook run cell by cell in JupyterLab, driven by a real headless browser.

`gpurun lab` serves a project folder on loopback with a token this test generates. Debian's
chromium, driven by playwright, opens the preflight runbook, runs it against a host that
cannot be reached (to see the error), picks the sandbox host in the host picker, runs all
cells again and reads the facts table. Papermill then runs the same runbook unattended and
must find the same facts. A second test applies the docker-binaries plan with the Apply
button. Every request the page makes outside the JupyterLab server is aborted and counted.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import html
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml
from chain import PROJECT

from gpurun.inventory import load_inventory
from gpurun.runner import declared_parameters

pytestmark = pytest.mark.sandbox

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = PROJECT / "test-artifacts"
DECOY = "a-unreachable"  # sorts first, so the picker offers it before the sandbox host
# Facts that change between two reads of the same host.
VARYING_FACTS = {"clock_offset_s", "free_kib"}
SERVER_START_S = 180
CELL_RUN_S = 300


@dataclass
class LabServer:
    url: str
    token: str
    folder: Path
    process: subprocess.Popen[bytes]

    def page_url(self, runbook: str) -> str:
        return f"{self.url}/lab/tree/runbooks/{runbook}.ipynb?token={self.token}"

    def api(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None


@pytest.fixture(scope="module")
def lab_host(sandbox_hosts):
    return sandbox_hosts.start("lab")


@pytest.fixture(scope="module")
def project(lab_host, demo_bundle, tmp_path_factory) -> Path:
    """A project folder: the inventory with a decoy and the sandbox host, no runbooks yet."""
    folder = tmp_path_factory.mktemp("lab-project")
    (folder / "parameters").mkdir()
    inventory = {"all": {
        "vars": {"bundle_dir": str(demo_bundle)},
        "hosts": {
            # Nothing listens on port 9 of loopback: the login fails at once.
            DECOY: {"ansible_host": "127.0.0.1", "ansible_port": 9, "ansible_user": "root"},
            lab_host.name: {
                "ansible_host": lab_host.address, "ansible_port": lab_host.port,
                "ansible_user": lab_host.user,
                "ansible_ssh_private_key_file": str(lab_host.key_file),
                "gpurun_known_hosts_file": str(lab_host.known_hosts_file),
            },
        },
    }}
    (folder / "parameters" / "lab.yaml").write_text(yaml.safe_dump(inventory))
    return folder


@pytest.fixture(scope="module")
def lab_server(project, tmp_path_factory) -> Iterator[LabServer]:
    """Start `gpurun lab` on a free loopback port; stop it and its kernels at the end."""
    token = secrets.token_hex(16)
    port = _free_port()
    state = tmp_path_factory.mktemp("jupyter-state")
    environment = {
        **os.environ, "JUPYTER_TOKEN": token,
        # JupyterLab's settings and workspaces of this test only, not the user's.
        "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
    }
    log = (state / "lab.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gpurun.cli", "lab", str(project), "--no-browser",
         "--port", str(port)],
        env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = LabServer(f"http://127.0.0.1:{port}", token, project, process)
    try:
        _wait_for_server(server, state / "lab.log")
        yield server
    finally:
        _stop_server(server)
        log.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_server(server: LabServer, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"gpurun lab exited with {server.process.returncode}:\n"
                        f"{log.read_text()}")
        try:
            server.api("/api/status")
            return
        except OSError:
            time.sleep(1)
    pytest.fail(f"gpurun lab did not answer in {SERVER_START_S} s:\n{log.read_text()}")


def _stop_server(server: LabServer) -> None:
    """Shut the kernels down through the API, then stop the server's process group."""
    if server.process.poll() is None:
        try:
            for kernel in server.api("/api/kernels"):
                server.api(f"/api/kernels/{kernel['id']}", method="DELETE")
        except OSError:
            pass  # the server is stopping anyway; SIGTERM makes it stop its kernels too
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(lab_server) -> Iterator[Any]:
    """Yield a chromium browser whose pages abort every request not sent to the lab server."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the browser test needs playwright (the test extra)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"the browser test needs Debian's chromium package ({CHROMIUM} not found)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def open_runbook(browser: Any, server: LabServer, runbook: str) -> Any:
    """Open a runbook in a new page and return the page once its kernel is idle."""
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.blocked = []  # type: ignore[attr-defined]

    def route(request_route: Any) -> None:
        if request_route.request.url.startswith(server.url):
            request_route.continue_()
        else:
            page.blocked.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    page.goto(server.page_url(runbook))
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=CELL_RUN_S * 1000)
    wait_for_idle(page)
    return page


def wait_for_idle(page: Any) -> None:
    page.wait_for_selector(".jp-StatusBar-Widget:has-text('Python 3 (ipykernel) | Idle')",
                           timeout=CELL_RUN_S * 1000)


# The highest execution count among the cells' prompts ("[3]:"), 0 when none ran.
HIGHEST_PROMPT_JS = """prompts => Math.max(0, ...prompts.map(prompt => {
    const found = prompt.innerText.match(/\\[(\\d+)\\]/);
    return found ? Number(found[1]) : 0;
}))"""

# True once a cell is running ("[*]:") or one has a higher execution count than `before`.
CELL_STARTED_JS = """before => Array.from(document.querySelectorAll('.jp-InputPrompt')).some(prompt => {
    const text = prompt.innerText;
    const found = text.match(/\\[(\\d+)\\]/);
    return text.includes('[*]') || (found !== null && Number(found[1]) > before);
})"""


def run_menu(page: Any, command: str) -> None:
    """Click an entry of JupyterLab's Run menu by its command id, and wait until a cell ran.

    A click that lands while JupyterLab is still busy with the page can be lost, so the click
    is made once more when no cell started within 30 s.
    """
    before = page.eval_on_selector_all(".jp-InputPrompt", HIGHEST_PROMPT_JS)
    for _ in range(2):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.locator(f"li[data-command='{command}']").click()
        try:
            page.wait_for_function(CELL_STARTED_JS, arg=before, timeout=30_000)
            return
        except Exception as error:
            if type(error).__name__ != "TimeoutError":
                raise
    raise AssertionError(f"{command} from the Run menu started no cell")


def pick_host(page: Any, name: str) -> None:
    host_list = page.locator(".gpurun-host-picker select").nth(1)
    host_list.select_option(label=name)
    page.wait_for_selector(f".gpurun-host-picker td:has-text('{name}')", timeout=60_000)


def table_rows(page: Any, title: str) -> list[list[str]]:
    """Return the rows of the table under the heading `title`, as cell texts."""
    return page.eval_on_selector_all(
        f"h4:text-is('{title}') + table tbody tr",
        "rows => rows.map(row => Array.from(row.cells).map(cell => cell.innerText.trim()))")


def shoot(page: Any, name: str, heading: str) -> Path:
    # JupyterLab asks whether to fetch its news (it is off); answering hides the question.
    no_news = page.locator(".jp-Notification-Toast button:has-text('No')")
    if no_news.count():
        no_news.first.click()
    page.locator(f"h4:text-is('{heading}')").first.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    page.screenshot(path=str(shot))
    return shot


@dataclass
class LabRun:
    facts: dict[str, str]
    findings: dict[str, str]
    decoy_error: str
    error_pointer: str
    screenshot: Path
    blocked: list[str]


@pytest.fixture(scope="module")
def lab_preflight(browser, lab_server, lab_host) -> LabRun:
    """Run the preflight runbook in JupyterLab: first on the decoy, then on the sandbox host."""
    page = open_runbook(browser, lab_server, "preflight")
    run_menu(page, "runmenu:run-all")
    page.wait_for_selector(f"text=cannot connect to host {DECOY}", timeout=CELL_RUN_S * 1000)
    wait_for_idle(page)
    decoy_error = page.locator(f"pre:has-text('cannot connect to host {DECOY}')").first.inner_text()
    pointer = page.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()

    pick_host(page, lab_host.name)
    run_menu(page, "runmenu:run-all")
    page.wait_for_selector("h4:text-is('Findings')", timeout=CELL_RUN_S * 1000)
    page.wait_for_selector(f"text=preflight on {lab_host.name}: unchanged",
                           timeout=CELL_RUN_S * 1000)
    wait_for_idle(page)
    facts = {row[0]: row[1] for row in table_rows(page, "System facts")}
    findings = {row[1]: row[0] for row in table_rows(page, "Findings")}
    return LabRun(facts, findings, decoy_error, " ".join(pointer),
                  shoot(page, "lab-preflight.png", "System facts"), page.blocked)


def test_lab_shows_facts_table(lab_preflight, lab_host):
    assert lab_preflight.facts["arch"] in ("x86_64", "aarch64")
    assert lab_preflight.facts["package_format"] == "deb"
    assert lab_preflight.facts["init_system"] == "systemd"
    assert lab_preflight.findings["CPU architecture"] == "ok"
    assert lab_preflight.screenshot.stat().st_size > 20_000
    assert lab_preflight.blocked == []


def test_lab_error_is_short_with_next_step(lab_preflight):
    assert "connection refused" in lab_preflight.decoy_error
    assert "next step:" in lab_preflight.decoy_error
    assert "Traceback" not in lab_preflight.decoy_error
    # The cell's error output only points at the message instead of repeating it.
    assert "ConnectionFailed: the step stopped here" in lab_preflight.error_pointer
    assert "connection refused" not in lab_preflight.error_pointer


def test_papermill_gives_same_facts(lab_preflight, lab_server, lab_host, tmp_path):
    """Papermill runs the same runbook with no input and finds the same facts."""
    host = load_inventory(lab_server.folder / "parameters" / "lab.yaml")[lab_host.name]
    declared = declared_parameters(PROJECT / "runbooks", ["preflight"])["preflight"]
    parameters = {k: v for k, v in host.parameters().items() if k in declared}
    (tmp_path / "host.yaml").write_text(yaml.safe_dump(parameters))
    executed = tmp_path / "preflight.ipynb"
    finished = subprocess.run(
        [sys.executable, "-m", "papermill", str(PROJECT / "runbooks" / "preflight.ipynb"),
         str(executed), "-f", str(tmp_path / "host.yaml")],
        cwd=PROJECT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=CELL_RUN_S, check=False)
    assert finished.returncode == 0, finished.stderr[-3000:]

    outputs = [o for c in nbformat.read(str(executed), as_version=4).cells
               for o in c.get("outputs", [])]
    facts = _html_table(outputs, "System facts")
    findings = {row[1]: row[0] for row in _html_rows(outputs, "Findings")}
    stable = {k: v for k, v in facts.items() if k not in VARYING_FACTS}
    assert stable == {k: v for k, v in lab_preflight.facts.items() if k not in VARYING_FACTS}
    assert findings == lab_preflight.findings
    # Results are tables: no cell shows a returned object's repr.
    assert [o for o in outputs if o.output_type == "execute_result"] == []
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                   for o in outputs)


def _html_rows(outputs: list[Any], title: str) -> list[list[str]]:
    """Return the rows of the HTML table titled `title` in a notebook's outputs."""
    for output in outputs:
        page = output.get("data", {}).get("text/html", "")
        if f"<h4>{html.escape(title)}</h4>" not in page:
            continue
        body = page.split(f"<h4>{html.escape(title)}</h4>", 1)[1].split("</table>", 1)[0]
        rows = re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>", 1)[1], re.DOTALL)
        return [[html.unescape(re.sub(r"<br>", "\n", cell)).strip()
                 for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)] for row in rows]
    raise AssertionError(f"no table {title!r} in the executed notebook")


def _html_table(outputs: list[Any], title: str) -> dict[str, str]:
    return {row[0]: row[1] for row in _html_rows(outputs, title)}


def test_apply_button_installs_binaries(browser, lab_server, lab_host, sandbox_hosts):
    """docker-binaries waits for the Apply button, then installs; verify runs after it."""
    page = open_runbook(browser, lab_server, "docker-binaries")
    run_menu(page, "runmenu:run-all")
    page.wait_for_selector(f"text=cannot connect to host {DECOY}", timeout=CELL_RUN_S * 1000)
    wait_for_idle(page)
    pick_host(page, lab_host.name)
    run_menu(page, "runmenu:run-all")

    # Run All stops at the verify cell: the plan waits for the button.
    page.wait_for_selector("text=is not applied yet", timeout=CELL_RUN_S * 1000)
    wait_for_idle(page)
    before = sandbox_hosts.run(lab_host, ["test", "-e", "/usr/bin/dockerd"])
    assert before.returncode == 1, "dockerd was installed before the click"
    button = page.locator(".widget-button:has-text('Apply')")
    assert button.count() == 1
    button.click()
    page.wait_for_selector(".widget-button:has-text('Applied')", timeout=CELL_RUN_S * 1000)
    assert page.locator(".widget-output h4:text-is('Outcome')").count() == 1
    assert page.locator(".widget-output .widget-hprogress").count() == 1

    verify_cell = page.locator(".jp-Cell:has(.jp-InputArea:has-text('step.verify('))")
    verify_cell.locator(".jp-InputPrompt").click()
    run_menu(page, "notebook:run-all-below")
    page.wait_for_selector(f"text=docker-binaries on {lab_host.name}: changed",
                           timeout=CELL_RUN_S * 1000)
    wait_for_idle(page)
    checks = table_rows(page, "Verification")
    assert checks
    assert {row[0] for row in checks} == {"passed"}
    assert page.locator("h4:has-text('applied with the Apply button')").count() == 1
    shoot(page, "lab-apply.png", "Verification")
    after = sandbox_hosts.run(lab_host, ["test", "-x", "/usr/bin/dockerd"])
    assert after.returncode == 0
    assert page.blocked == []
