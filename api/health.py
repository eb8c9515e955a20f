"""Liveness and readiness: /readyz checks PostgreSQL, Temporal and Triton."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


async def _database_ok(request: Request) -> bool:
    try:
        async with request.app.state.engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text("SELECT 1")), 5)
        return True
    except Exception:  # noqa: BLE001 - readiness reports, never raises
        return False


async def _triton_ok(request: Request) -> bool:
    try:
        return await asyncio.wait_for(request.app.state.inference.is_ready(), 5)
    except Exception:  # noqa: BLE001
        return False


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    database, temporal, triton = await asyncio.gather(
        _database_ok(request), request.app.state.temporal.is_healthy(), _triton_ok(request)
    )
    checks = {"postgres": database, "temporal": temporal, "triton": triton}
    ready = all(checks.values())
    body: dict = {"status": "ready" if ready else "unavailable", "checks": checks}
    if not ready:
        down = [name for name, ok in checks.items() if not ok]
        body["error"] = {
            "code": "dependencies_unavailable",
            "message": f"unavailable: {', '.join(down)}",
            "details": {"services": down, "retry_after_s": 5},
        }
    return JSONResponse(body, status_code=200 if ready else 503, headers={} if ready else {"Retry-After": "5"})
