"""Every error leaves the API as ``{"error": {"type", "message", "request_id"}}`` with its status.

The mapping from groundqa's exception hierarchy to HTTP lives here and nowhere else.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from index.errors import (
    ConfigError,
    CorpusError,
    DocumentError,
    GroundQAError,
    IndexEmpty,
    IndexUnavailable,
    ModelUnavailable,
    NotFound,
)
from service.admission import Overloaded

log = logging.getLogger("groundqa.api")

# Seconds a client should wait before retrying while a backend is down.
RETRY_AFTER_S = 5

_STATUS_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error raised on purpose by a route or dependency, already in HTTP terms."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type or _STATUS_TYPES.get(status, "error")
        self.message = message
        self.headers = headers or {}


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def error_body(type: str, message: str, request_id: str | None) -> dict[str, Any]:
    return {"error": {"type": type, "message": message, "request_id": request_id}}


def error_response(
    request: Request,
    status: int,
    type: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    rid = request_id_of(request)
    headers = dict(headers or {})
    if rid:
        # Also set here: a 500 is answered outside the request-id middleware.
        headers["X-Request-ID"] = rid
    return JSONResponse(error_body(type, message, rid), status_code=status, headers=headers)


def to_api_error(exc: Exception) -> ApiError:
    """The HTTP face of an exception (used by the handlers and by streams that already started)."""
    retry = {"Retry-After": str(RETRY_AFTER_S)}
    match exc:
        case ApiError():
            return exc
        case Overloaded():
            return ApiError(
                503,
                str(exc),
                type="overloaded",
                headers={"Retry-After": str(exc.retry_after)},
            )
        case IndexUnavailable():
            return ApiError(
                503,
                f"the vector store is unavailable: {exc}",
                type="index_unavailable",
                headers=retry,
            )
        case ModelUnavailable():
            return ApiError(
                503, f"a model is unavailable: {exc}", type="model_unavailable", headers=retry
            )
        case IndexEmpty():
            return ApiError(
                503, "the index is empty: ingest documents first", type="index_empty", headers=retry
            )
        case NotFound():
            return ApiError(404, str(exc), type="not_found")
        case DocumentError():
            return ApiError(422, str(exc), type="document_error")
        case ConfigError() | CorpusError():
            return ApiError(400, str(exc))
        case GroundQAError():
            return ApiError(500, "internal error", type="internal_error")
        case _:
            return ApiError(500, "internal error", type="internal_error")


def _validation_message(exc: RequestValidationError) -> str:
    # Field locations and reasons only: the offending input is never echoed back.
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(
            f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid"))
        )
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        err = to_api_error(exc)
        if err.status >= 500:
            log.warning("%s: %s", err.type, err.message)
        return error_response(request, err.status, err.type, err.message, err.headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(request, 422, "validation_error", _validation_message(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = (
            exc.detail
            if isinstance(exc.detail, str)
            else _STATUS_TYPES.get(exc.status_code, "error")
        )
        return error_response(
            request,
            exc.status_code,
            _STATUS_TYPES.get(exc.status_code, "error"),
            message,
            dict(exc.headers or {}),
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return error_response(request, 500, "internal_error", "internal error")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(GroundQAError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
