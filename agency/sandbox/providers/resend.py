"""Sandbox face: Resend email API (POST /emails with Idempotency-Key)."""

from __future__ import annotations

import uuid  # noqa: F401  (error bodies carry correlation ids on some faces)

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from agency.sandbox.providers import ProviderFace, SandboxContext
from agency.sandbox.providers.common import google_status  # noqa: F401


def error_response(status_code: int, message: str, retry_after_s: float | None = None) -> JSONResponse:
    """An error in this provider's documented shape."""
    return JSONResponse({"statusCode": status_code, "message": message, "name": "rate_limit_exceeded" if status_code == 429 else "internal_server_error"}, status_code)


def create_router(ctx: SandboxContext) -> APIRouter:
    router = APIRouter()
    return router


FACE = ProviderFace(name="resend", build=create_router, error=error_response)
