"""Sandbox face: LinkedIn Posts API (/rest/posts, versioned)."""

from __future__ import annotations

import uuid  # noqa: F401  (error bodies carry correlation ids on some faces)

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from agency.sandbox.providers import ProviderFace, SandboxContext
from agency.sandbox.providers.common import google_status  # noqa: F401


def error_response(status_code: int, message: str, retry_after_s: float | None = None) -> JSONResponse:
    """An error in this provider's documented shape."""
    return JSONResponse({"status": status_code, "serviceErrorCode": 0, "code": "TOO_MANY_REQUESTS" if status_code == 429 else "INTERNAL_SERVER_ERROR", "message": message}, status_code)


def create_router(ctx: SandboxContext) -> APIRouter:
    router = APIRouter()
    return router


FACE = ProviderFace(name="linkedin", build=create_router, error=error_response)
