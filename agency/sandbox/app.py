"""Local sandbox publishing channel: the REST protocol every channel adapter speaks.

Real platforms (blog CMS, social network, email service) are unreachable here, so the product
publishes through :mod:`agency.channels` to this protocol, and this server implements it
locally with SQLite persistence and a deterministic simulated audience.

Protocol (JSON in and out; all ``/v1`` routes need ``Authorization: Bearer <token>``)
------------------------------------------------------------------------------------------
Errors always have the shape ``{"error": {"code": str, "message": str, "fields": [str],
"details": [{"field", "code", "message", ...}]}}`` (``fields`` names the offending request
fields; ``details`` gives one entry per problem).

``POST /v1/channels/{channel}/posts`` — publish. ``channel`` is ``blog``, ``social`` or
``email`` (else 404 ``unknown_channel``). Header ``Idempotency-Key`` is required (else 400
``idempotency_key_missing``; at most 255 characters). Body::

    {"campaign_id": str, "item_id": str, "format": "blog_post"|"social_post"|"email"|
     "x_post"|"linkedin_post"|"instagram_caption", "title": str, "body": str,
     "budget_cents": int in [0, 10**12]}

``format`` must match the channel (social takes social_post and the per-network formats);
blog needs a title, email needs a title (the subject, <= 150 chars); social bodies are <= 280
chars (linkedin_post 3,000, instagram_caption 2,200); an empty body is rejected. Invalid requests
get 422 ``validation_failed``; a body that is not a JSON object gets 400 ``invalid_json``.

* 201 + the post: first request with this key.
* 200 + the SAME post and header ``Idempotent-Replayed: true``: the key was seen with an
  identical body (channel, campaign_id, item_id, format, title, body, budget_cents).
* 409 ``idempotency_key_reused``: the key was seen with a different body.

The key lookup and the insert run in one SQLite write transaction, so concurrent duplicates
create exactly one post.

Post object: ``{"id", "object": "post", "url", "channel", "campaign_id", "item_id", "format",
"title", "body", "budget_cents" (the current total), "budget_changes" ([{"at", "budget_cents"}],
oldest first), "status": "published", "created_at" (ISO-8601 UTC), "idempotency_key"}``.
A publish replay returns the post as it is now (with any later budget changes).

``PATCH /v1/posts/{id}`` — change a live post's paid budget (404 ``not_found`` for an unknown
post). Header ``Idempotency-Key`` is required as for publishing. Body ``{"budget_cents": int in
[0, 10**12]}`` (else 422 ``validation_failed``): the post's new TOTAL budget, including what is
already spent. Spend so far is kept and the rest (new total - spent) is paced evenly over the
remaining flight; once the flight is over, over a new flight of the channel's default length
starting now. A total below the spend so far gets 422 ``budget_below_spend`` with
``details[0].spent_cents``.

* 200 + the post: first request with this key.
* 200 + the post as that first answer showed it + ``Idempotent-Replayed: true``: the key was
  seen with the same post id and budget_cents.
* 409 ``idempotency_key_reused``: the key was seen with a different post or budget. Budget
  change keys are their own namespace, separate from publish keys. Rejected requests (4xx)
  do not use up their key.

The spend check, the clock reading and the insert run in one SQLite write transaction, so
concurrent changes serialise and each is checked against the spend at its own instant.

``GET /v1/posts/{id}`` — one post (404 ``not_found``).
``GET /v1/posts?campaign_id=&channel=`` — ``{"object": "list", "data": [post...]}``.
``GET /v1/posts/{id}/metrics`` — cumulative simulated metrics ``{"post_id", "channel",
"impressions", "clicks", "conversions", "spend_cents", "budget_cents", "budget_changes",
"as_of", "elapsed_simulated_s"}``; every counter is non-decreasing, across budget changes
too. Simulated time runs ``time_scale`` times faster than real time (default 3600: one real
second is one simulated hour); see :mod:`agency.sandbox.audience`.
``GET /v1/deliveries?campaign_id=`` — every publish and budget change attempt received, in
order: ``{"seq", "received_at", "channel", "idempotency_key", "campaign_id", "item_id",
"operation" ("publish"|"budget_update"), "outcome" ("created"|"updated"|"replayed"|"rejected"|
"failed"), "status_code", "error_code", "post_id", "budget_cents" (requested)}``. Budget
changes to an unknown post are not logged (they have no channel or campaign).

Fault injection (sandbox only): ``PUT /v1/sandbox/faults`` with ``{"count": N, "status_code":
503, "after_commit": false}`` makes the next N valid publish or budget change requests answer
``status_code`` (with ``Retry-After: 1``). ``after_commit: true`` applies the request first and
then answers the error, as when a response is lost on the way back; a retry with the same key
then gets the 200 replay. ``GET /v1/sandbox/faults`` shows how many remain.

``GET /healthz`` — 200 ``{"status": "ok"}``, no auth. ``GET /p/{id}`` — the public page of a
post (what ``url`` points to), no auth.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from agency.contracts import CHANNEL_FORMAT, SOCIAL_NETWORK_FORMATS
from agency.sandbox.audience import AudienceModel, audience_model
from agency.sandbox.providers import SandboxContext, all_faces
from agency.sandbox.providers.faults import CredentialsUpdate, FaultInjector, FaultPlan, ProviderCredentials, RequestCounters
from agency.sandbox.store import Post, PostInput, SandboxStore

# Public, well-known token: only acceptable on a loopback-bound local sandbox.
DEFAULT_LOCAL_TOKEN = "sandbox-local-token"
TOKEN_ENV = "AGENCY_SANDBOX_TOKEN"

_MAX_KEY_LENGTH = 255
_MAX_ID_LENGTH = 200
_MAX_TITLE = {"blog": 200, "email": 150, "social": 200}
_MAX_BODY = {"blog": 100_000, "email": 100_000, "social": 280}
# The social channel also takes one post per network, each with that network's own limit.
_CHANNEL_FORMATS = {channel: (fmt,) for channel, fmt in CHANNEL_FORMAT.items()}
_CHANNEL_FORMATS["social"] += SOCIAL_NETWORK_FORMATS
_MAX_FORMAT_BODY = {"x_post": 280, "linkedin_post": 3_000, "instagram_caption": 2_200}
# Ten billion dollars: far above any campaign, far below SQLite's 64-bit integer limit.
_MAX_BUDGET_CENTS = 10**12


class SandboxError(Exception):
    """An error answered in the protocol's JSON error shape."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict:
    details = details or []
    fields = list(dict.fromkeys(d["field"] for d in details if d.get("field")))
    return {"error": {"code": code, "message": message, "fields": fields, "details": details}}


def resolve_tokens(tokens: Iterable[str] | None) -> tuple[frozenset[str], bool]:
    """Accepted tokens and whether they are the public local default.

    Explicit ``tokens`` win; else ``AGENCY_SANDBOX_TOKEN``, else ``AGENCY_CHANNEL_TOKEN``; else
    the default token, but only when ``AGENCY_ENVIRONMENT`` is local or test.
    """
    if tokens is not None:
        accepted = frozenset(t for t in tokens if t)
        if not accepted:
            raise ValueError("the sandbox needs at least one non-empty token")
        return accepted, DEFAULT_LOCAL_TOKEN in accepted
    # AGENCY_CHANNEL_TOKEN is what the adapter sends (Settings.channel_token): accepting it
    # lets one variable configure both ends of a local stack.
    from_env = (os.environ.get(TOKEN_ENV) or os.environ.get("AGENCY_CHANNEL_TOKEN") or "").strip()
    if from_env:
        return frozenset({from_env}), from_env == DEFAULT_LOCAL_TOKEN
    environment = os.environ.get("AGENCY_ENVIRONMENT", "local").strip().lower()
    if environment not in ("local", "test"):
        raise RuntimeError(f"set {TOKEN_ENV}: the default sandbox token is for local mode only")
    return frozenset({DEFAULT_LOCAL_TOKEN}), True


class FaultConfig(BaseModel):
    count: int = Field(ge=0, le=1000)
    status_code: int = Field(default=503, ge=400, le=599)
    after_commit: bool = False


@dataclass(frozen=True)
class _Validated:
    post: PostInput
    fingerprint: str


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds")


def _validate_post(channel: str, payload: dict[str, Any]) -> _Validated:
    problems: list[dict[str, str]] = []

    def problem(field: str, code: str, message: str) -> None:
        problems.append({"field": field, "code": code, "message": message})

    def text(field: str, required: bool, max_length: int, empty_message: str = "") -> str:
        value = payload.get(field, None if required else "")
        if value is None or not isinstance(value, str):
            problem(field, "required" if value is None else "type", f"{field} must be a string")
            return ""
        if required and not value.strip():
            problem(field, "empty", empty_message or f"{field} must not be empty")
        elif len(value) > max_length:
            problem(field, "too_long", f"{field} is {len(value)} chars; max {max_length}")
        return value

    campaign_id = text("campaign_id", True, _MAX_ID_LENGTH)
    item_id = text("item_id", True, _MAX_ID_LENGTH)
    fmt = text("format", True, 50)
    if fmt and fmt not in _CHANNEL_FORMATS[channel]:
        problem("format", "format_mismatch", f"channel {channel} takes {' or '.join(_CHANNEL_FORMATS[channel])}")
    subject = " (the subject line)" if channel == "email" else ""
    title = text(
        "title", channel in ("blog", "email"), _MAX_TITLE[channel],
        empty_message=f"{channel} posts need a title{subject}",
    )
    body = text("body", True, _MAX_FORMAT_BODY.get(fmt, _MAX_BODY[channel]))
    budget = _budget_field(payload, problem)

    if problems:
        raise SandboxError(422, "validation_failed", "the post is invalid", details=problems)
    post = PostInput(channel, campaign_id, item_id, fmt, title, body, budget)
    canonical = json.dumps(
        [channel, campaign_id, item_id, fmt, title, body, budget], ensure_ascii=False
    )
    return _Validated(post, hashlib.sha256(canonical.encode("utf-8")).hexdigest())


def _budget_field(payload: dict[str, Any], problem: Any) -> int:
    """``budget_cents`` from ``payload``: an integer in [0, 10**12]; 0 after a problem."""
    budget = payload.get("budget_cents")
    if not isinstance(budget, int) or isinstance(budget, bool):
        problem("budget_cents", "type", "budget_cents must be an integer")
        return 0
    if budget < 0:
        problem("budget_cents", "negative", "budget_cents must be >= 0")
    elif budget > _MAX_BUDGET_CENTS:
        problem("budget_cents", "too_large", f"budget_cents must be <= {_MAX_BUDGET_CENTS}")
    return budget


def _validate_budget_update(post_id: str, payload: dict[str, Any]) -> tuple[int, str]:
    """The new total budget and the request fingerprint (post id and budget)."""
    problems: list[dict[str, str]] = []

    def problem(field: str, code: str, message: str) -> None:
        problems.append({"field": field, "code": code, "message": message})

    budget = _budget_field(payload, problem)
    if problems:
        raise SandboxError(422, "validation_failed", "the budget update is invalid", details=problems)
    canonical = json.dumps(["budget_update", post_id, budget])
    return budget, hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _spend_at(post: Post, elapsed_simulated_s: float) -> int:
    """Reported spend of ``post`` at ``elapsed_simulated_s`` (the audience model's)."""
    return _model(post).at(elapsed_simulated_s).spend_cents


def _model(post: Post) -> AudienceModel:
    return audience_model(
        post.id, post.channel, post.title, post.body, post.published_budget_cents,
        [(c.at_simulated_s, c.budget_cents) for c in post.budget_changes],
    )


def _budget_changes_json(post: Post) -> list[dict[str, Any]]:
    return [{"at": _iso(c.at), "budget_cents": c.budget_cents} for c in post.budget_changes]


def create_sandbox_app(
    db_path: Path, time_scale: float = 3600.0, tokens: Iterable[str] | None = None
) -> FastAPI:
    """The sandbox channel as an ASGI app; all state lives in the SQLite file ``db_path``."""
    if time_scale <= 0:
        raise ValueError("time_scale must be > 0 (simulated seconds per real second)")
    accepted_tokens, _ = resolve_tokens(tokens)
    store = SandboxStore(db_path)

    app = FastAPI(title="agency sandbox channel", version="1", docs_url=None, redoc_url=None)
    app.state.store = store
    app.state.time_scale = time_scale

    @app.exception_handler(SandboxError)
    async def _sandbox_error(_: Request, exc: SandboxError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details), exc.status_code, headers=exc.headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": str(e["loc"][-1]), "code": e["type"], "message": e["msg"]}
            for e in exc.errors()
        ]
        return JSONResponse(error_body("validation_failed", "invalid request", details), 422)

    def require_token(request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not any(
            hmac.compare_digest(token.encode(), t.encode()) for t in accepted_tokens
        ):
            raise SandboxError(
                401, "unauthorized", "missing or invalid bearer token",
                headers={"WWW-Authenticate": 'Bearer realm="sandbox"'},
            )

    def post_json(post: Post, request: Request) -> dict[str, Any]:
        return {
            "id": post.id,
            "object": "post",
            "url": str(request.url_for("public_post", post_id=post.id)),
            "channel": post.channel,
            "campaign_id": post.campaign_id,
            "item_id": post.item_id,
            "format": post.format,
            "title": post.title,
            "body": post.body,
            "budget_cents": post.budget_cents,
            "budget_changes": _budget_changes_json(post),
            "status": "published",
            "created_at": _iso(post.created_at),
            "idempotency_key": post.idempotency_key,
        }

    def load_post(post_id: str) -> Post:
        post = store.get_post(post_id)
        if post is None:
            raise SandboxError(404, "not_found", f"no post {post_id}")
        return post

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/p/{post_id}", response_class=HTMLResponse, name="public_post")
    def public_post(post_id: str) -> str:
        post = load_post(post_id)
        return (
            f"<!doctype html><title>{html.escape(post.title or post.channel)}</title>"
            f"<h1>{html.escape(post.title)}</h1><p>{html.escape(post.body)}</p>"
        )

    async def admit_write(key: str, payload: Any, validate, reject, ok_status: int):
        """What every write checks first: its idempotency key, a JSON object body, the body's
        validation, and an injected outage before commit. Returns (validated, status, fault)."""
        if not key:
            raise await reject(
                SandboxError(400, "idempotency_key_missing", "the Idempotency-Key header is required")
            )
        if len(key) > _MAX_KEY_LENGTH:
            raise await reject(
                SandboxError(400, "idempotency_key_invalid", f"Idempotency-Key is over {_MAX_KEY_LENGTH} chars")
            )
        if not isinstance(payload, dict):
            raise await reject(SandboxError(400, "invalid_json", "the body must be a JSON object"))
        try:
            validated = validate(payload)
        except SandboxError as exc:
            raise await reject(exc) from None
        fault = await run_in_threadpool(store.take_fault)
        if fault is not None and not fault.after_commit:
            raise await reject(
                SandboxError(fault.status_code, "simulated_outage", "injected sandbox failure",
                             headers={"Retry-After": "1"}),
                outcome="failed",
            )
        return validated, (fault.status_code if fault is not None else ok_status), fault

    def finish_write(key: str, outcome, fault, request: Request, ok_status: int) -> JSONResponse:
        """The answer to a committed (or replayed, or conflicting) write."""
        if outcome.kind == "conflict":
            raise SandboxError(
                409, "idempotency_key_reused",
                "this Idempotency-Key was already used with a different request body",
                details=[{"field": "Idempotency-Key", "code": "reused", "message": key}],
            )
        if outcome.kind == "replayed":
            return JSONResponse(
                post_json(outcome.post, request), 200, headers={"Idempotent-Replayed": "true"}
            )
        if fault is not None:
            raise SandboxError(
                fault.status_code, "simulated_outage", "injected sandbox failure after commit",
                headers={"Retry-After": "1"},
            )
        return JSONResponse(post_json(outcome.post, request), ok_status)

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_token)])

    @v1.post("/channels/{channel}/posts")
    async def create_post(channel: str, request: Request) -> JSONResponse:
        if channel not in CHANNEL_FORMAT:
            raise SandboxError(404, "unknown_channel", f"unknown channel {channel!r}")
        key = request.headers.get("idempotency-key", "").strip()
        payload: Any = None
        try:
            payload = await request.json()
        except ValueError:
            pass
        ids = payload if isinstance(payload, dict) else {}
        campaign_id, item_id = ids.get("campaign_id"), ids.get("item_id")

        async def reject(error: SandboxError, outcome: str = "rejected") -> SandboxError:
            await run_in_threadpool(
                lambda: store.record_rejection(
                    channel=channel, idempotency_key=key or None,
                    campaign_id=campaign_id if isinstance(campaign_id, str) else None,
                    item_id=item_id if isinstance(item_id, str) else None,
                    outcome=outcome, status_code=error.status_code, error_code=error.code,
                )
            )
            return error

        valid, status, fault = await admit_write(key, payload, lambda p: _validate_post(channel, p), reject, 201)
        outcome = await run_in_threadpool(
            lambda: store.publish(key, valid.fingerprint, valid.post, status_code=status)
        )
        return finish_write(key, outcome, fault, request, 201)

    @v1.get("/posts")
    def list_posts(
        request: Request, campaign_id: str | None = None, channel: str | None = None
    ) -> dict[str, Any]:
        posts = store.list_posts(campaign_id=campaign_id, channel=channel)
        return {"object": "list", "data": [post_json(p, request) for p in posts]}

    @v1.get("/posts/{post_id}")
    def get_post(post_id: str, request: Request) -> dict[str, Any]:
        return post_json(load_post(post_id), request)

    @v1.patch("/posts/{post_id}")
    async def update_budget(post_id: str, request: Request) -> JSONResponse:
        key = request.headers.get("idempotency-key", "").strip()
        payload: Any = None
        try:
            payload = await request.json()
        except ValueError:
            pass
        post = await run_in_threadpool(store.get_post, post_id)
        if post is None:
            raise SandboxError(404, "not_found", f"no post {post_id}")
        requested = payload.get("budget_cents") if isinstance(payload, dict) else None
        # Log the requested budget only when it fits the column (an int of sane size).
        loggable = type(requested) is int and abs(requested) <= _MAX_BUDGET_CENTS
        logged_budget = requested if loggable else None

        async def reject(error: SandboxError, outcome: str = "rejected") -> SandboxError:
            await run_in_threadpool(
                lambda: store.record_rejection(
                    channel=post.channel, idempotency_key=key or None,
                    campaign_id=post.campaign_id, item_id=post.item_id, outcome=outcome,
                    status_code=error.status_code, error_code=error.code,
                    operation="budget_update", post_id=post.id, budget_cents=logged_budget,
                )
            )
            return error

        (budget, fingerprint), status, fault = await admit_write(
            key, payload, lambda p: _validate_budget_update(post_id, p), reject, 200
        )
        outcome = await run_in_threadpool(
            lambda: store.update_budget(
                post_id, key, fingerprint, budget,
                time_scale=time_scale, spend_at=_spend_at, status_code=status,
            )
        )
        if outcome.kind == "not_found" or outcome.post is None:
            raise SandboxError(404, "not_found", f"no post {post_id}")
        if outcome.kind == "below_spend":
            raise SandboxError(
                422, "budget_below_spend",
                f"budget_cents {budget} is below the {outcome.spent_cents} already spent",
                details=[{"field": "budget_cents", "code": "below_spend",
                          "message": f"already spent {outcome.spent_cents} cents",
                          "spent_cents": outcome.spent_cents}],
            )
        return finish_write(key, outcome, fault, request, 200)

    @v1.get("/posts/{post_id}/metrics")
    def get_metrics(post_id: str) -> dict[str, Any]:
        post, now = store.post_at_now(post_id)
        if post is None:
            raise SandboxError(404, "not_found", f"no post {post_id}")
        elapsed = post.elapsed_simulated_s(now, time_scale)
        metrics = _model(post).at(elapsed)
        return {
            "post_id": post.id,
            "channel": post.channel,
            "impressions": metrics.impressions,
            "clicks": metrics.clicks,
            "conversions": metrics.conversions,
            "spend_cents": metrics.spend_cents,
            "budget_cents": post.budget_cents,
            "budget_changes": _budget_changes_json(post),
            "as_of": _iso(now),
            "elapsed_simulated_s": round(elapsed, 3),
        }

    @v1.get("/deliveries")
    def list_deliveries(campaign_id: str | None = None) -> dict[str, Any]:
        rows = store.list_deliveries(campaign_id)
        for row in rows:
            row["received_at"] = _iso(float(row["received_at"]))  # type: ignore[arg-type]
        return {"object": "list", "data": rows}

    @v1.put("/sandbox/faults")
    def set_faults(config: FaultConfig) -> dict[str, Any]:
        store.set_fault(config.count, config.status_code, config.after_commit)
        return {"pending": store.pending_faults()}

    @v1.get("/sandbox/faults")
    def get_faults() -> dict[str, Any]:
        return {"pending": store.pending_faults()}

    app.include_router(v1)
    mount_provider_faces(app, db_path, time_scale, accepted_tokens, require_token)
    return app


def mount_provider_faces(
    app: FastAPI, db_path: Path, time_scale: float, accepted_tokens: frozenset[str], require_token
) -> None:
    """Serve every provider face under its prefix, with faults, counters and credentials."""
    ctx = SandboxContext(
        db_path=db_path,
        time_scale=time_scale,
        faults=FaultInjector(),
        counters=RequestCounters(),
        credentials=ProviderCredentials(default=accepted_tokens),
    )
    app.state.providers = ctx
    faces = {face.name: face for face in all_faces()}
    for face in faces.values():
        app.include_router(face.build(ctx), prefix=f"/{face.name}")

    @app.middleware("http")
    async def provider_faults(request: Request, call_next):
        provider = request.url.path.split("/", 2)[1] if request.url.path.count("/") >= 1 else ""
        face = faces.get(provider)
        if face is None:
            return await call_next(request)
        rule = ctx.faults.take(provider, request.method, request.url.path)
        response = None
        if rule is not None and rule.delay_s:
            # Read the body first: a client that times out disconnects, and the request must
            # still be applied (the provider got it; only the answer is late).
            await request.body()
            await asyncio.sleep(rule.delay_s)
        if rule is None or rule.status_code is None or rule.after_commit:
            response = await call_next(request)
        if rule is not None and rule.status_code is not None:
            message = "injected fault" + (" after the request was applied" if rule.after_commit else "")
            response = face.error(rule.status_code, message, rule.retry_after_s)
            if rule.retry_after_s is not None:
                response.headers["Retry-After"] = f"{rule.retry_after_s:g}"
        route = request.scope.get("route")
        template = getattr(route, "path_format", None) or request.url.path
        if not template.startswith(f"/{provider}/"):
            template = f"/{provider}{template}"
        ctx.counters.add(provider, f"{request.method} {template} {response.status_code}")
        return response

    admin = APIRouter(prefix="/_sandbox", dependencies=[Depends(require_token)])

    def known(provider: str) -> str:
        if provider not in faces:
            raise SandboxError(404, "unknown_provider", f"no provider face {provider!r}; known: {sorted(faces)}")
        return provider

    @admin.put("/faults/{provider}")
    def put_provider_faults(provider: str, plan: FaultPlan) -> dict[str, Any]:
        ctx.faults.set(known(provider), plan)
        return {"provider": provider, "rules": ctx.faults.remaining(provider)}

    @admin.get("/faults/{provider}")
    def get_provider_faults(provider: str) -> dict[str, Any]:
        return {"provider": known(provider), "rules": ctx.faults.remaining(provider)}

    @admin.delete("/faults/{provider}")
    def clear_provider_faults(provider: str) -> dict[str, Any]:
        ctx.faults.clear(known(provider))
        return {"provider": provider, "rules": []}

    @admin.get("/requests/{provider}")
    def get_provider_requests(provider: str) -> dict[str, Any]:
        return {"provider": known(provider), "counts": ctx.counters.snapshot(provider)}

    @admin.delete("/requests/{provider}")
    def reset_provider_requests(provider: str) -> dict[str, Any]:
        ctx.counters.reset(known(provider))
        return {"provider": provider, "counts": {}}

    @admin.put("/credentials/{provider}")
    def put_provider_credentials(provider: str, update: CredentialsUpdate) -> dict[str, Any]:
        ctx.credentials.set(known(provider), update.tokens)
        return {"provider": provider, "accepted": len(update.tokens)}

    app.include_router(admin)
