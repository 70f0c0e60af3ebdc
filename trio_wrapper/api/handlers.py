"""Every error leaves as ``{"error": {"code", "message"}}`` with the status of its code."""

from __future__ import annotations

import logging

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from trio_wrapper.api.errors import CODE_OF_STATUS, HttpRefusal
from trio_wrapper.api.responses import error_response
from trio_wrapper.core.errors import Refusal
from trio_wrapper.runtime.eventlog import LIMIT_LOG

log = logging.getLogger("trio_wrapper.api")


def install_error_handlers(app: QuartTrio) -> None:
    @app.errorhandler(Refusal)
    async def _api_error(err: Refusal) -> Response:
        LIMIT_LOG.refused(err)
        return error_response(err)

    @app.errorhandler(HTTPException)
    async def _http_error(err: HTTPException) -> Response:
        status = err.code or 500
        code = CODE_OF_STATUS.get(status, "http_error")
        message = err.description or err.name
        if status == 413:
            message = f"request body larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
        refusal = HttpRefusal(status, code, message)
        LIMIT_LOG.refused(refusal)
        return error_response(refusal)

    @app.errorhandler(Exception)
    async def _unexpected(err: Exception) -> Response:
        log.exception(
            "unhandled error on %s %s",
            request.method,
            request.path,
            extra={"event": "internal_error", "method": request.method, "path": request.path},
        )
        return error_response(Refusal("internal_error", "internal error; see the daemon log"))
