"""The dashboard at ``/`` in headless Chromium, driven by Selenium, over the real daemon.

Selenium rather than Playwright: it drives the system's ``/usr/bin/chromium`` through the
system's ``chromedriver`` (Debian ``chromium-driver``), a small pure-Python wheel, where
Playwright's wheel is large and wants its own browser build. Skipped, with the reason
printed, where chromium, chromedriver or selenium is missing.

One scenario, as a user would go: start an agent from the form and watch its row turn
``running`` then ``completed``; open it and see its log lines and records; stop a second
agent with the button; reload an agent's page while it streams and see no line twice.
Chromium resolves no host name but 127.0.0.1, and the page's own list of requests must
name no other host. The screenshots are saved in the test's temp dir, and into ``docs/``
(``docs/dashboard.png``, ``docs/agent.png``) when ``SAVE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest

from tests.daemon import Daemon, running_daemon
from tests.helpers import REPO, TRANSCRIPTS, need

pytestmark = pytest.mark.e2e

TRANSCRIPT = TRANSCRIPTS / "codex" / "exec_json_docs_sample.jsonl"
WAIT = 20.0  # for anything the page must show; a loaded machine is slow, never this slow
T = TypeVar("T")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the tests of this file (each on a daemon, so an origin,
    of its own)."""
    with headless_chrome(tmp_path_factory.mktemp("chromium")) as driver:
        yield driver


@pytest.fixture
def driver(browser: Any) -> Iterator[Any]:
    browser.get("about:blank")
    browser.get_log("browser")  # the console of earlier tests is theirs
    yield browser
    browser.get("about:blank")  # no page of this test polls a daemon that is gone


@contextmanager
def headless_chrome(tmp_path: Path) -> Iterator[Any]:
    chromium = need("chromium", "chromium")
    chromedriver = need("chromedriver", "chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        print("SKIP: selenium not installed (the test extra of pyproject.toml)")
        pytest.skip("selenium not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",  # as root in a container there is no usable sandbox
        "--disable-gpu",
        "--window-size=1280,800",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-proxy-server",
        # Any host name but the loopback address fails to resolve: nothing can leave.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(chromedriver, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(WAIT)
        driver.set_script_timeout(WAIT)
        yield driver
    finally:
        driver.quit()


def serve(tmp_path: Path) -> Any:
    env = {"TRIO_WRAPPER_AGENTS_STOP_GRACE_SECONDS": "2"}
    return running_daemon(tmp_path / "daemon", env=env, cwd=REPO, stop_timeout=20)


class Page:
    """The browser, with bounded waits on what the page shows."""

    def __init__(self, driver: Any, base: str) -> None:
        self.driver = driver
        self.base = base
        self.hosts: set[str] = set()

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def until(self, check: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(lambda _: check())
        except TimeoutException:
            raise AssertionError(f"the page never showed {what}") from None

    def row_status(self, name: str) -> str | None:
        status: str | None = self.js(
            "const row = document.querySelector(`tr[data-name='${arguments[0]}']`);"
            "return row ? row.dataset.status : null;",
            name,
        )
        return status

    def cell(self, name: str, index: int) -> str | None:
        """The text of a cell of the agent's row (0: name, 1: status … 8: last)."""
        text: str | None = self.js(
            "const row = document.querySelector(`tr[data-name='${arguments[0]}']`);"
            "return row ? row.children[arguments[1]].textContent : null;",
            name,
            index,
        )
        return text

    def agent_status(self) -> str | None:
        status: str | None = self.js(
            "const b = document.querySelector('#agent-status [data-status]');"
            "return b ? b.dataset.status : null;"
        )
        return status

    def log_lines(self) -> list[str]:
        lines: list[str] = self.js(
            "return [...document.querySelectorAll('#log .ln')].map(e => e.textContent);"
        )
        return lines

    def note_hosts(self) -> None:
        """The host of every request the page made so far (navigation, files, fetches,
        EventSources), from its performance timeline."""
        names: list[str] = self.js(
            "return [...performance.getEntriesByType('navigation'),"
            " ...performance.getEntriesByType('resource')].map(e => new URL(e.name).host);"
        )
        self.hosts.update(names)

    def open(self, fragment: str = "") -> None:
        self.driver.get(self.base + "/" + fragment)
        self.until(
            lambda: self.js("return document.getElementById('conn').textContent") == "live",
            "its events connection live",
        )

    def screenshot(self, path: Path) -> None:
        self.js("window.scrollTo(0, 0)")
        self.driver.save_screenshot(str(path))


def save_screenshots(shots: dict[str, Path]) -> None:
    if os.environ.get("SAVE_SCREENSHOTS") == "1":
        for name, path in shots.items():
            shutil.copyfile(path, REPO / "docs" / name)


def test_dashboard_drives_agents(tmp_path: Path, driver: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    with serve(tmp_path) as daemon, daemon.client() as http:
        page = Page(driver, daemon.url)
        page.open()

        # 1. Start an agent from the form; it waits for its stdin to close, so that the
        #    test (not the clock) decides when it ends.
        start_form = driver.find_element(By.CSS_SELECTOR, "#start-card > summary")
        start_form.click()
        driver.find_element(By.ID, "start-name").send_keys("first")
        driver.find_element(By.CSS_SELECTOR, "input[name=mode][value=argv]").click()
        command = f"sh -c 'cat >/dev/null; cat {TRANSCRIPT.relative_to(REPO)}'"
        driver.find_element(By.ID, "start-argv-input").send_keys(command)
        driver.find_element(By.CSS_SELECTOR, "details.more summary").click()
        Select(driver.find_element(By.ID, "start-format")).select_by_visible_text("codex-json")
        driver.find_element(By.ID, "start-stdin").click()
        driver.find_element(By.ID, "start-submit").click()
        page.until(lambda: page.row_status("first") == "running", "the new row running")
        start_form.click()  # folded again: the table shows in the picture
        created = http.get("/api/agents/first").json()
        assert created["command"] == ["sh", "-c", command.split("'")[1]]
        assert created["format"] == "codex-json" and created["stdin_open"]

        sent = http.post("/api/agents/first/input", json={"eof": True})
        assert sent.status_code == 200, sent.text
        page.until(lambda: page.row_status("first") == "completed", "the row completed")
        # Its tokens come from the run index once the run has ended (input + output).
        page.until(lambda: page.cell("first", 6) == "24,885", "the run's tokens")

        # A failed one, for the figures and the picture.
        failing = {
            "name": "failing",
            "command": ["sh", "-c", "echo 'Error: disk full' >&2; exit 3"],
        }
        assert http.post("/api/agents", json=failing).status_code == 201
        page.until(lambda: page.row_status("failing") == "failed", "the failed row")
        page.note_hosts()
        shots = {"dashboard.png": tmp_path / "dashboard.png", "agent.png": tmp_path / "agent.png"}
        page.screenshot(shots["dashboard.png"])

        # 2. Open it: its log lines, in order, and its records by kind.
        driver.find_element(By.CSS_SELECTOR, "tr[data-name='first'] a").click()
        lines = TRANSCRIPT.read_text().splitlines()
        page.until(lambda: page.log_lines() == lines, "the agent's log lines")
        page.until(
            lambda: page.js("return document.querySelectorAll('#records .rec').length") > 0,
            "a record",
        )
        kinds = set(
            page.js(
                "return [...document.querySelectorAll('#records .rec')].map(e => e.dataset.type);"
            )
        )
        assert {"session", "tool_call", "metric"} <= kinds, kinds
        # The detail's records and the stream's replay of them overlap: each shown once.
        total = http.get("/api/agents/first").json()["extraction"]["total_matches"]
        shown = page.js("return document.getElementById('records-count').textContent")
        assert shown == f"({total})"
        tool = driver.find_element(By.CSS_SELECTOR, "#group-tools .rec pre").text
        assert tool == "bash -lc ls"
        assert page.agent_status() == "completed"
        page.until(
            lambda: (
                page.js("return document.querySelectorAll('#runs-body tr[data-stamp]').length") == 1
            ),
            "its one run",
        )
        page.note_hosts()
        page.screenshot(shots["agent.png"])

        # 3. Stop a second agent with its button. Its colours are rendered, not printed;
        #    its stderr line is told apart.
        script = r"printf '\033[1;31mwaiting\033[0m\n'; echo oops >&2; exec sleep 300"
        second = {"name": "second", "command": ["sh", "-c", script]}
        assert http.post("/api/agents", json=second).status_code == 201
        driver.get(f"{daemon.url}/#/agent/second")
        page.until(lambda: page.agent_status() == "running", "the second agent running")
        page.until(lambda: sorted(page.log_lines()) == ["oops", "waiting"], "its two lines")
        coloured = driver.find_element(By.CSS_SELECTOR, "#log .ln:not(.err) .a-31.a-b")
        assert coloured.text == "waiting"
        assert driver.find_element(By.CSS_SELECTOR, "#log .ln.err").text.startswith("oops")
        driver.find_element(By.ID, "btn-stop").click()
        page.until(lambda: page.agent_status() == "stopped", "the second agent stopped")
        assert http.get("/api/agents/second").json()["status"] == "stopped"
        assert not driver.find_element(By.ID, "btn-stop").is_enabled()
        page.note_hosts()

        # 4. Reload the page of an agent while it streams: every line once, in order.
        reload_while_streaming(page, http, daemon)

        # 5. At phone width nothing is wider than the screen (the tables scroll inside
        #    their cards), on the overview and on an agent's page.
        driver.set_window_size(390, 844)
        try:
            for fragment in ("", "#/agent/first"):
                driver.get(f"{daemon.url}/{fragment}")
                page.until(lambda: page.row_status("first") or page.agent_status(), "the page")
                width = page.js("return [document.documentElement.scrollWidth, innerWidth]")
                assert width[0] <= width[1], (fragment, width)
        finally:
            driver.set_window_size(1280, 800)

        page.note_hosts()
        errors = [
            entry["message"]
            for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "Uncaught" in entry["message"]
        ]
        assert not errors, errors

    assert page.hosts == {f"127.0.0.1:{daemon.port}"}, page.hosts
    save_screenshots(shots)


def reload_while_streaming(page: Page, http: httpx.Client, daemon: Daemon) -> None:
    name = "streamer"
    body = {"name": name, "command": ["cat"], "stdin": True, "format": "none"}
    assert http.post("/api/agents", json=body).status_code == 201
    first = [f"line {i}" for i in range(1, 41)]
    assert http.post(f"/api/agents/{name}/input", json={"data": "\n".join(first) + "\n"})
    page.driver.get(f"{daemon.url}/#/agent/{quote(name)}")
    page.until(lambda: page.log_lines() == first, "the first 40 lines")

    rest = [f"line {i}" for i in range(41, 201)]
    failures: list[str] = []

    def write() -> None:
        with httpx.Client(base_url=daemon.url, timeout=10) as writer:
            for start in range(0, len(rest), 4):
                chunk = "".join(line + "\n" for line in rest[start : start + 4])
                answer = writer.post(f"/api/agents/{name}/input", json={"data": chunk})
                if answer.status_code != 200:
                    failures.append(answer.text)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        page.driver.refresh()
    finally:
        writer.join(WAIT)
    assert not failures, failures
    # The last line and the end of its input from the page's own input box.
    from selenium.webdriver.common.by import By

    page.until(lambda: page.js("return !document.getElementById('input-form').hidden"), "input")
    box = page.driver.find_element(By.ID, "input-text")
    box.send_keys("typed in the page")
    box.submit()
    page.until(lambda: page.log_lines()[-1:] == ["typed in the page"], "the typed line")
    page.js("document.getElementById('btn-eof').click()")
    page.until(lambda: page.agent_status() == "completed", "the streamer completed")
    expected = [*first, *rest, "typed in the page"]
    page.until(lambda: len(page.log_lines()) >= len(expected), "every streamed line")
    shown = page.log_lines()
    assert len(shown) == len(set(shown)), "a line shown twice"
    assert shown == expected


def test_dashboard_asks_for_the_token(tmp_path: Path, driver: Any) -> None:
    """With reads protected, the page asks for the token, refuses a wrong one, then shows
    the agents with the right one (also on the event stream, through ?access_token=), and
    keeps it in the tab across a reload."""
    from selenium.webdriver.common.by import By

    token = "dashboard-s3cret"
    env = {
        "TRIO_WRAPPER_AUTH_TOKEN": token,
        "TRIO_WRAPPER_AUTH_PROTECT_READS": "true",
        "TRIO_WRAPPER_AGENTS_STOP_GRACE_SECONDS": "2",
    }
    daemon_dir = tmp_path / "daemon"
    with (
        running_daemon(daemon_dir, env=env, cwd=REPO, stop_timeout=20) as daemon,
        httpx.Client(
            base_url=daemon.url, timeout=10, headers={"Authorization": f"Bearer {token}"}
        ) as http,
    ):
        body = {"name": "guarded", "command": ["sh", "-c", "echo hi"]}
        assert http.post("/api/agents", json=body).status_code == 201
        page = Page(driver, daemon.url)
        driver.get(daemon.url + "/")
        dialog_open = "return document.getElementById('token-dialog').open"
        page.until(lambda: page.js(dialog_open), "the token dialog")
        assert page.row_status("guarded") is None

        field = driver.find_element(By.ID, "token-input")
        field.send_keys("wrong")
        field.submit()
        page.until(
            lambda: (
                page.js("return document.getElementById('token-error').textContent")
                == "The token was refused."
            ),
            "the wrong token refused",
        )
        field = driver.find_element(By.ID, "token-input")
        field.send_keys(token)
        field.submit()
        page.until(lambda: page.row_status("guarded") == "completed", "the agents")
        page.until(
            lambda: page.js("return document.getElementById('conn').textContent") == "live",
            "the event stream open with the token",
        )
        assert not page.js(dialog_open)

        driver.refresh()
        page.until(lambda: page.row_status("guarded") == "completed", "the agents after a reload")
        assert not page.js(dialog_open)
        stored = page.js("return sessionStorage.getItem('trio_wrapper.token')")
        assert stored == token


def test_dashboard_reconnects_after_a_daemon_restart(tmp_path: Path, driver: Any) -> None:
    """The daemon stops and a new one starts on the same port and logs: the page says it
    lost the connection, reconnects on its own, and shows what the new daemon does."""
    env = {"TRIO_WRAPPER_AGENTS_STOP_GRACE_SECONDS": "2"}
    logs = tmp_path / "logs"
    with running_daemon(tmp_path / "a", env=env, logs_dir=logs, cwd=REPO) as first:
        page = Page(driver, first.url)
        page.open()
        with first.client() as http:
            body = {"name": "before", "command": ["sh", "-c", "echo one"]}
            assert http.post("/api/agents", json=body).status_code == 201
        page.until(lambda: page.row_status("before") == "completed", "the first agent")
        port = first.port
    connection = "return document.getElementById('conn').textContent"
    page.until(lambda: page.js(connection) != "live", "the connection lost")

    with (
        running_daemon(
            tmp_path / "b", "--port", str(port), env=env, logs_dir=logs, cwd=REPO
        ) as second,
        second.client() as http,
    ):
        assert second.port == port
        page.until(lambda: page.js(connection) == "live", "the connection back")
        body = {"name": "after", "command": ["sh", "-c", "echo two"]}
        assert http.post("/api/agents", json=body).status_code == 201
        page.until(lambda: page.row_status("after") == "completed", "the new daemon's agent")
        assert page.row_status("before") == "completed"  # read back from its files
