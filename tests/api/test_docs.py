"""The published API description: /openapi.json equals docs/openapi.json, and /docs works
offline (Swagger UI's files come from the daemon, not a CDN)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
import trio
from quart.typing import TestClientProtocol as Client

from tests.helpers import REPO
from tests.live import live_server

CHECKED_IN = REPO / "docs" / "openapi.json"


async def test_served_openapi_equals_the_checked_in_copy(client: Client) -> None:
    served = await (await client.get("/openapi.json")).get_json()
    assert served == json.loads(CHECKED_IN.read_text()), (
        "docs/openapi.json is stale: refresh it with `make openapi`"
    )


async def test_docs_page_loads_its_assets_from_the_daemon(tmp_path: Path) -> None:
    # Over a real port: quart-trio's test client stalls on a file body of many chunks.
    async with live_server(tmp_path) as live, httpx.AsyncClient(base_url=live.url) as http:
        page = (await http.get("/docs")).text
        head = page.split("<body>")[0]
        assert "https://" not in page and "http://" not in head
        assert 'src="docs/assets/swagger-ui-bundle.js"' in page
        assert 'href="docs/assets/swagger-ui.css"' in page
        for name, kind in (
            ("swagger-ui-bundle.js", "text/javascript"),
            ("swagger-ui.css", "text/css"),
        ):
            response = await http.get(f"/docs/assets/{name}")
            assert response.status_code == 200
            assert response.headers["Content-Type"].startswith(kind)
            assert len(response.content) > 10_000
        for name in ("nope.js", "..%2Fpyproject.toml", "swagger-editor.js"):
            response = await http.get(f"/docs/assets/{name}")
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package 'chromium')")
async def test_swagger_ui_renders_the_operations_offline(tmp_path: Path) -> None:
    """The page names no outside address (checked above); Chromium shows that the files
    the daemon serves really draw the operations."""
    assert CHROMIUM is not None
    async with live_server(tmp_path) as live:
        command = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            f"{live.url}/docs",
        ]
        with trio.fail_after(90):
            result = await trio.run_process(command, capture_stdout=True, capture_stderr=True)
    dom = result.stdout.decode(errors="replace")
    assert 'data-path="/api/agents"' in dom, dom[-2000:]
    assert 'data-path="/api/agents/{name}/stream"' in dom


async def served_openapi() -> bytes:
    """/openapi.json as the app serves it, from a throwaway supervisor."""
    import tempfile

    from tests.helpers import make_config
    from trio_wrapper.api.app import create_app
    from trio_wrapper.runtime.supervisor import Supervisor

    with tempfile.TemporaryDirectory() as tmp:
        config = make_config(Path(tmp))
        supervisor = Supervisor(config)
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            app = create_app(config, supervisor)
            async with app.test_app() as test_app:
                body = await (await test_app.test_client().get("/openapi.json")).get_data()
            await supervisor.shutdown()
    return bytes(body)


if __name__ == "__main__":
    # `make openapi`: refresh the checked-in copy, pretty-printed for reviewable diffs.
    spec = json.loads(trio.run(served_openapi))
    CHECKED_IN.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
    print(f"wrote {CHECKED_IN.relative_to(REPO)}")
