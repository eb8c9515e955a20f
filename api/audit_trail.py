"""One audit record per mutating API call, and the request context it needs.

Handlers that change state record the call themselves, inside the transaction that makes the
change (:func:`record_call`), so the change and its record commit together. Every other
mutating call (refused, invalid, failed, or one with nothing to commit) is recorded by
:class:`RequestContextMiddleware` after the response, with the outcome read from the status.

Anonymous calls that fail authentication are not written to the chain: each append takes the
chain lock, and an unauthenticated flood must not be able to serialise the API on it. Login
attempts are the exception (the auth endpoints record them), since they name an account.

The middleware also gives every request an id (``X-Request-ID``, accepted from the client when
well formed) and adds the caller's ``RateLimit-*`` headers to the response.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agency.security.audit import append_audit_event
from agency.security.rate_limit import rate_limit_headers
from agency.security.rbac import Principal
from agency.telemetry import app_metrics

log = logging.getLogger("agency.api.audit")

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REQUEST_ID_HEADER = "X-Request-ID"
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


def outcome_for_status(status: int) -> str:
    if status < 400:
        return "ok"
    return {
        401: "unauthenticated",
        403: "denied",
        404: "not_found",
        409: "conflict",
        422: "invalid",
        429: "rate_limited",
    }.get(status, "rejected" if status < 500 else "error")


def actor_of(principal: Principal | None) -> str:
    return principal.subject if principal is not None else "anonymous"


def _tenant_uuid(principal: Principal | None) -> uuid.UUID | None:
    return uuid.UUID(principal.tenant_id) if principal is not None else None


def _route_action(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "name", None) or f"{scope['method'].lower()} {scope['path']}"


def _target(scope: Scope) -> tuple[str, str]:
    params: dict[str, Any] = scope.get("path_params") or {}
    for name in ("campaign_id", "key_id"):
        if name in params:
            return name.removesuffix("_id"), str(params[name])
    return "route", scope.get("route").path if scope.get("route") is not None else scope["path"]


async def record_call(
    request: Request,
    session: AsyncSession,
    *,
    subject_type: str,
    subject_id: str,
    action: str | None = None,
    detail: dict[str, Any] | None = None,
    outcome: str = "ok",
    actor: str | None = None,
    tenant_id: uuid.UUID | None = None,
) -> None:
    """Append this call's audit record in ``session``'s transaction; the middleware then skips it."""
    principal = getattr(request.state, "principal", None)
    await append_audit_event(
        session,
        actor=actor or actor_of(principal),
        tenant_id=tenant_id or _tenant_uuid(principal),
        action=action or _route_action(request.scope),
        subject_type=subject_type,
        subject_id=subject_id,
        detail=detail,
        outcome=outcome,
        request_id=request.state.request_id,
    )
    request.state.audited = True


class RequestContextMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): request id, RateLimit headers, request metrics,
    fallback audit record."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        request_id = _request_id(scope)
        state["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_context(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                decision = state.get("rate_limit")
                if decision is not None and "RateLimit-Limit" not in headers:
                    for name, value in rate_limit_headers(decision).items():
                        headers[name] = value
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        finally:
            route = scope.get("route")
            labels = {
                # The route template, never the raw path: ids would explode the label set.
                "route": getattr(route, "path", "unmatched"),
                "method": scope["method"],
                "status": str(status),
            }
            metrics = app_metrics()
            metrics.http_requests.add(1, labels)
            metrics.http_duration.record(time.perf_counter() - started, labels)
            if scope["method"] in MUTATING_METHODS and not state.get("audited"):
                await self._record_unaudited_call(scope, state, status)

    async def _record_unaudited_call(self, scope: Scope, state: dict[str, Any], status: int) -> None:
        principal: Principal | None = state.get("principal")
        if principal is None:
            return  # anonymous: see the module docstring
        subject_type, subject_id = _target(scope)
        try:
            async with scope["app"].state.sessions() as session, session.begin():
                await append_audit_event(
                    session,
                    actor=principal.subject,
                    tenant_id=_tenant_uuid(principal),
                    action=_route_action(scope),
                    subject_type=subject_type,
                    subject_id=subject_id,
                    detail={"status": status},
                    outcome=outcome_for_status(status),
                    request_id=state["request_id"],
                )
        except Exception:  # the response is already out; the log must say what was not recorded
            log.exception(
                "audit record lost: %s %s by %s (request %s, status %d)",
                scope["method"], scope["path"], principal.subject, state["request_id"], status,
            )


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _CLIENT_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex
