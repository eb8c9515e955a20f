"""One base error type mapped to HTTP, and a machine-readable JSON body for every failure."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("agency.api")


class AgencyError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class NotFound(AgencyError):
    status_code = 404
    code = "not_found"


class Conflict(AgencyError):
    status_code = 409
    code = "conflict"

    def __init__(self, message: str, *, code: str = "conflict", **kwargs: Any):
        super().__init__(message, **kwargs)
        self.code = code


class ServiceUnavailable(AgencyError):
    status_code = 503

    def __init__(self, service: str, message: str, *, retry_after_s: int = 5):
        super().__init__(
            message,
            details={"service": service, "retry_after_s": retry_after_s},
            headers={"Retry-After": str(retry_after_s)},
        )
        self.code = f"{service}_unavailable"


class Unauthenticated(AgencyError):
    """401: no credential, or one that does not verify. ``reason`` says which check failed."""

    status_code = 401
    code = "unauthenticated"

    def __init__(self, message: str, *, reason: str):
        super().__init__(
            message,
            details={"reason": reason},
            # RFC 6750 §3: tell the client which scheme to use and that its token was refused.
            headers={"WWW-Authenticate": f'Bearer realm="agency", error="invalid_token", error_description="{reason}"'},
        )


class Forbidden(AgencyError):
    status_code = 403
    code = "forbidden"


class RateLimited(AgencyError):
    """429 with the RateLimit-* and Retry-After headers built by agency.security.rate_limit."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int, headers: dict[str, str]):
        super().__init__(
            message,
            details={"retry_after_s": retry_after_s},
            headers={**headers, "Retry-After": str(retry_after_s)},
        )


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None
    fields: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    """Every error response: ``{"error": {"code", "message", ...}}``."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses, all with the common body."""
    descriptions = {
        400: "Malformed request body",
        401: "No credential, or one that does not verify",
        403: "The credential lacks the permission this route needs",
        404: "Not found (also: another tenant's resource)",
        409: "Conflicts with the resource's state",
        422: "Invalid request, with field errors",
        429: "Rate limited; see Retry-After and RateLimit-*",
        503: "A dependency (PostgreSQL, Temporal, Triton) is unavailable; see Retry-After",
    }
    return {status: {"model": ErrorBody, "description": descriptions[status]} for status in statuses}


# What any authenticated route can answer besides its own results.
AUTHENTICATED_ERRORS = error_responses(400, 401, 403, 422, 429, 503)


def install_error_handlers(app: FastAPI, *, allowed_methods: Callable[[str], list[str]] | None = None) -> None:
    @app.exception_handler(AgencyError)
    async def _agency_error(_: Request, exc: AgencyError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Framework-raised errors (unknown route, wrong method, unparsable body) in the same shape.
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
        body = {"error": {"code": codes.get(exc.status_code, f"http_{exc.status_code}"), "message": str(exc.detail)}}
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405 and allowed_methods is not None:
            headers["Allow"] = ", ".join(allowed_methods(request.url.path))
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"loc": [str(p) for p in err["loc"]], "message": err["msg"], "type": err["type"]}
            for err in exc.errors()
        ]
        return JSONResponse(
            {"error": {"code": "validation_error", "message": "request is invalid", "fields": fields}},
            status_code=422,
        )

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        # Lost or refused connections are an outage to retry, not a bug in the request.
        if exc.connection_invalidated or _is_connection_failure(exc):
            log.warning("database unavailable: %s", type(exc.orig).__name__)
            return await _agency_error(request, ServiceUnavailable("postgres", "database unavailable"))
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Never a stack trace to the client; the server log has it.
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse({"error": {"code": "internal_error", "message": "internal error"}}, status_code=500)


def _is_connection_failure(exc: DBAPIError) -> bool:
    import psycopg

    return isinstance(exc.orig, psycopg.OperationalError)
