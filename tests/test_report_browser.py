"""outputs/index.html in a real browser: Debian's chromium, driven headless by playwright.

Every request other than file:// is aborted and counted, so the page and the notebooks it
links must open without network access. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from chain import PROJECT
from fleet import recorded_fleet

pytestmark = pytest.mark.sandbox

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = PROJECT / "test-artifacts"


@pytest.fixture(scope="module")
def fleet(sandbox_hosts, demo_bundle, tmp_path_factory):
    return recorded_fleet(sandbox_hosts, demo_bundle, tmp_path_factory.mktemp("fleet"))


@pytest.fixture(scope="module")
def browser_page():
    """Yield a chromium page that aborts and records every request that is not file://."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the browser test needs playwright (the test extra)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"the browser test needs Debian's chromium package ({CHROMIUM} not found)")
    blocked: list[str] = []

    def route(request_route) -> None:
        if request_route.request.url.startswith("file://"):
            request_route.continue_()
        else:
            blocked.append(request_route.request.url)
            request_route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        page.route("**/*", route)
        page.blocked = blocked  # type: ignore[attr-defined]
        try:
            yield page
        finally:
            browser.close()


@pytest.fixture(scope="module")
def index_page(fleet, browser_page):
    browser_page.goto((fleet.outputs / "index.html").as_uri())
    return browser_page


def visible_hosts(page) -> list[str]:
    return page.eval_on_selector_all(
        "#runs tbody tr:not([hidden])", "rows => rows.map(row => row.dataset.host)")


def test_table_shows_both_hosts(fleet, index_page):
    first, second = (host.name for host in fleet.hosts)
    assert sorted(visible_hosts(index_page)) == sorted([first, first, first, second])
    runs = index_page.eval_on_selector_all(
        "#runs tbody tr td:nth-child(2)", "cells => cells.map(cell => cell.innerText.trim())")
    assert runs[:2] == [fleet.failed_run_id, fleet.second_run_id]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-index.png"
    index_page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert index_page.blocked == []


def test_every_link_resolves(fleet, index_page):
    links = index_page.eval_on_selector_all("#runs a", "links => links.map(a => a.href)")
    # Six steps of each host's main job, two of the second run, one of the failed run.
    assert len(links) == 15
    for link in links:
        assert link.startswith("file://"), link
        path = Path(link.removeprefix("file://"))
        assert path.is_file(), link
        assert path.suffix == ".html", link
        assert fleet.outputs in path.parents, link


def test_host_filter_hides_other_host(fleet, index_page):
    index_page.select_option("#host-filter", fleet.hosts[1].name)
    assert visible_hosts(index_page) == [fleet.hosts[1].name]
    assert index_page.inner_text("#shown") == "1"
    index_page.select_option("#host-filter", "")
    assert len(visible_hosts(index_page)) == 4


def test_status_filter_shows_failed_run(fleet, index_page):
    index_page.select_option("#status-filter", "failed")
    assert visible_hosts(index_page) == [fleet.hosts[0].name]
    failed_run = index_page.inner_text("#runs tbody tr:not([hidden]) td:nth-child(2)")
    assert failed_run.strip() == fleet.failed_run_id
    index_page.select_option("#status-filter", "completed")
    assert len(visible_hosts(index_page)) == 3
    index_page.select_option("#status-filter", "")


def test_notebook_page_opens_offline(fleet, browser_page):
    notebook = fleet.outputs / fleet.hosts[1].name / fleet.first_run_id / "05-runtime.html"
    browser_page.goto(notebook.as_uri())
    text = browser_page.inner_text("body")
    assert "Commands run" in text
    assert "daemon.json" in text
    ARTIFACTS.mkdir(exist_ok=True)
    browser_page.screenshot(path=str(ARTIFACTS / "report-notebook.png"))
    assert browser_page.blocked == []
