"""GET / and GET /ui/<name>: the dashboard's files, served from the package, public,
offline, relative to the page (so they work under ``server.root_path``)."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
import trio
from quart.typing import TestClientProtocol as Client

from tests.helpers import REPO, make_config
from tests.live import live_server
from trio_wrapper.api.app import create_app
from trio_wrapper.api.routes.dashboard import ASSETS, CONTENT_SECURITY_POLICY, STATIC_DIR
from trio_wrapper.runtime.supervisor import Supervisor

TOKEN = "dash-s3cret"


async def test_the_page_is_served_with_a_strict_policy(client: Client) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.content_type == "text/html; charset=utf-8"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "connect-src 'self'" in CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = await response.get_data(as_text=True)
    assert '<script src="ui/app.js"' in page
    assert '<link rel="stylesheet" href="ui/app.css">' in page


@pytest.mark.parametrize("name", sorted(ASSETS))
async def test_each_file_is_served_with_its_type(client: Client, name: str) -> None:
    response = await client.get(f"/ui/{name}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == ASSETS[name]
    assert await response.get_data() == (STATIC_DIR / name).read_bytes()


@pytest.mark.parametrize("name", ["index.html", "nope.js", "..%2Fapp.py", "app.js.map"])
async def test_other_names_are_json_404s(client: Client, name: str) -> None:
    response = await client.get(f"/ui/{name}")
    assert response.status_code == 404
    body = await response.get_json()
    assert body["error"]["code"] == "not_found"


def test_every_url_in_the_files_is_relative_and_local() -> None:
    """No CDN, no absolute path (it would escape a root_path prefix), no other host."""
    page = (STATIC_DIR / "index.html").read_text()
    for url in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert not url.startswith(("/", "http:", "https:")), url
    script = (STATIC_DIR / "app.js").read_text()
    assert not re.search(r"https?://", script)
    # Every API path the script asks for is relative ("api/…"), never "/api/…".
    assert re.search(r'"api/agents"', script)
    assert not re.search(r"""["'`]/api/""", script)
    assert "innerHTML" not in script  # agent output is only ever text
    assert "http" not in (STATIC_DIR / "app.css").read_text()


class _Tags(HTMLParser):
    """The page's ids, and its elements' nesting checked as it is read."""

    VOID = frozenset({"meta", "link", "input", "br", "img", "hr", "source"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids.update(value for key, value in attrs if key == "id" and value)
        if tag not in self.VOID and tag != "option":
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "option":
            return
        line = self.getpos()[0]
        assert self.open, f"</{tag}> closes nothing (line {line})"
        top = self.open.pop()
        assert top == tag, f"</{tag}> closes <{top}> (line {line})"


def test_the_page_is_well_formed_and_has_every_element_the_script_uses() -> None:
    tags = _Tags()
    tags.feed((STATIC_DIR / "index.html").read_text())
    assert tags.open == []
    script = (STATIC_DIR / "app.js").read_text()
    wanted = set(re.findall(r'\$\("([\w-]+)"\)', script))
    assert len(wanted) > 40
    assert wanted <= tags.ids, sorted(wanted - tags.ids)


def test_the_files_are_package_data() -> None:
    """A non-editable install carries every file of the folder (pyproject's package-data)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["trio_wrapper"]
    package = REPO / "trio_wrapper"
    files = [p.relative_to(package).as_posix() for p in STATIC_DIR.iterdir()]
    assert {"web/static/index.html", *(f"web/static/{n}" for n in ASSETS)} <= set(files)
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name


async def test_public_even_when_reads_need_the_token(tmp_path: Path, nursery: trio.Nursery) -> None:
    config = make_config(tmp_path, auth={"token": TOKEN, "protect_reads": True})
    supervisor = Supervisor(config)
    await nursery.start(supervisor.run)
    app = create_app(config, supervisor)
    try:
        async with app.test_app() as test_app:
            client = test_app.test_client()
            assert (await client.get("/")).status_code == 200
            assert (await client.get("/ui/app.js")).status_code == 200
            # The data is not: the page asks for the token when the API answers 401.
            assert (await client.get("/api/agents")).status_code == 401
            assert (await client.get("/api/metrics")).status_code == 401
    finally:
        with trio.fail_after(30):
            await supervisor.shutdown()


async def test_under_a_root_path(tmp_path: Path) -> None:
    async with (
        live_server(tmp_path, server={"root_path": "/wrapper"}) as live,
        httpx.AsyncClient(base_url=live.url) as http,
    ):
        page = await http.get("/wrapper/")
        assert page.status_code == 200
        assert "ui/app.js" in page.text
        # Relative to /wrapper/, the page's URLs land under the prefix.
        script = await http.get("/wrapper/ui/app.js")
        assert script.status_code == 200
        assert script.headers["Content-Type"].startswith("text/javascript")
        assert (await http.get("/wrapper/api/agents")).json() == {"agents": [], "count": 0}
        # Without the slash, relative URLs would resolve beside the prefix: sent to it.
        bare = await http.get("/wrapper")
        assert bare.status_code in (301, 302, 308), bare.text
        assert bare.headers["Location"] in ("/wrapper/", f"{live.url}/wrapper/")
