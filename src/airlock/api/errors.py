"""The one place where the error tree becomes HTTP: ``{"error": {code, message, hint}}``.

``401`` answers carry ``WWW-Authenticate: Bearer`` (RFC 6750): no token, or one that
is not valid; ``403`` means the token is valid and its role does not allow the action.
Messages quote request input only clipped (:func:`airlock.core.request_limits.clip`).
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from airlock.core.request_limits import clip
from airlock.errors import AirlockError

MAX_MESSAGE = 500  # characters of a message or hint: request input is never echoed whole
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="airlock"'}
_CODES = {
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def error_body(code: str, message: str, hint: str = "") -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message, "hint": hint}}


def error_json(exc: AirlockError) -> bytes:
    """An error as the API's JSON body (for answers made outside FastAPI's handlers)."""
    body = error_body(exc.code, clip(exc.message, MAX_MESSAGE), clip(exc.hint, MAX_MESSAGE))
    return json.dumps(body).encode()


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AirlockError)
    async def _airlock(_: Request, exc: AirlockError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, clip(exc.message, MAX_MESSAGE), clip(exc.hint, MAX_MESSAGE)),
            status_code=exc.status,
            headers=CHALLENGE if exc.status == 401 else None,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(clip(str(p), 40) for p in first.get("loc", ()) if p != "body")
        return JSONResponse(
            error_body(
                "invalid_input",
                f"{clip(where, 120)}: {clip(str(first.get('msg')), 200)}",
                "see /docs for the schema",
            ),
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 401:
            headers.update(CHALLENGE)
        return JSONResponse(
            error_body(_CODES.get(exc.status_code, "http_error"), clip(str(exc.detail), 200)),
            status_code=exc.status_code,
            headers=headers or None,
        )
