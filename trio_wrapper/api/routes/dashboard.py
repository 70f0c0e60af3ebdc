"""GET / (the dashboard page) and GET /ui/<name> (its script and style sheet).

The files are plain HTML, CSS and JavaScript in ``trio_wrapper/web/static`` (package data:
no build step, nothing from a CDN). Both routes are public (``guards.PUBLIC``): the page
holds no data; everything it shows it asks of the guarded API, with the token the user
types into it. Every URL in the page is relative to it, so it works under
``server.root_path``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from quart import Response, redirect, request
from quart_trio import QuartTrio

import trio_wrapper
from trio_wrapper.api.errors import HttpRefusal

STATIC_DIR: Final = Path(trio_wrapper.__file__).parent / "web" / "static"
PAGE: Final = "index.html"
ASSET_ROUTE: Final = "/ui/<name>"
# The files the page loads, by name: nothing else in (or outside) the folder is served.
ASSETS: Final = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
# The page may talk to its own origin only: no script, style, image or connection
# elsewhere, and no inline script (a log line can never become code).
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def _secured(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    # Small files that change with the package: always revalidated, never stale.
    response.headers["Cache-Control"] = "no-cache"
    return response


def install(app: QuartTrio) -> None:
    page = (STATIC_DIR / PAGE).read_bytes()
    assets = {name: (STATIC_DIR / name).read_bytes() for name in ASSETS}

    @app.before_request
    async def _to_the_page() -> Response | None:
        # Under a root_path, ``<prefix>`` without its slash matches no route: send it to
        # ``<prefix>/``, where the page's relative URLs resolve under the prefix.
        root = request.root_path
        if root and request.scope.get("path") == root and request.method in ("GET", "HEAD"):
            return _secured(redirect(request.root_path + "/"))  # type: ignore[arg-type]
        return None

    @app.route("/", methods=["GET"])
    async def dashboard() -> Response:
        """The dashboard: a single page over this API (docs/api.md, "Dashboard")."""
        return _secured(Response(page, content_type="text/html; charset=utf-8"))

    @app.route(ASSET_ROUTE, methods=["GET"])
    async def dashboard_asset(name: str) -> Response:
        """A file of the dashboard page (``app.js``, ``app.css``, ``favicon.svg``)."""
        content_type = ASSETS.get(name)
        if content_type is None:
            raise HttpRefusal(404, "not_found", f"no dashboard file named {name!r}")
        return _secured(Response(assets[name], content_type=content_type))
