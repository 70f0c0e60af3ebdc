"""``/docs`` without a network: Swagger UI's files served by the daemon itself.

quart-schema's page loads Swagger UI from a CDN by default, so on a machine without
internet (or behind a strict proxy) ``/docs`` stays blank. The same files ship in the
``swagger-ui-py`` wheel; we serve its two that the page needs, from the package folder.
The URLs are relative to ``/docs``, so the page also works under ``server.root_path``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Final

from quart import Response, send_file
from quart_trio import QuartTrio

from trio_wrapper.api.errors import HttpRefusal

ASSET_ROUTE: Final = "/docs/assets/<name>"
ASSETS: Final = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
}
# A week: the files change only with the installed package version.
CACHE_SECONDS: Final = 7 * 24 * 3600


def swagger_static_dir() -> Path:
    """The package's static folder, found without importing it (its ``__init__`` pulls
    in handlers for a dozen web frameworks we do not use)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def install_docs_ui(app: QuartTrio) -> None:
    static = swagger_static_dir()
    # Relative to the page at <root>/docs, whatever prefix a proxy adds.
    app.config["QUART_SCHEMA_SWAGGER_JS_URL"] = "docs/assets/swagger-ui-bundle.js"
    app.config["QUART_SCHEMA_SWAGGER_CSS_URL"] = "docs/assets/swagger-ui.css"

    @app.route(ASSET_ROUTE, methods=["GET"])
    async def docs_asset(name: str) -> Response:
        content_type = ASSETS.get(name)
        if content_type is None:
            raise HttpRefusal(404, "not_found", f"no documentation asset named {name!r}")
        response = await send_file(static / name, mimetype=content_type)
        response.cache_control.public = True
        response.cache_control.max_age = CACHE_SECONDS
        return response
