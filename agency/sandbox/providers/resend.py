"""Sandbox face: Resend email API (POST /emails with Idempotency-Key).

* ``POST /emails`` ``{"from", "to", "subject", "html"|"text", "cc", "bcc", "reply_to",
  "tags": [{"name", "value"}]}`` -> 200 ``{"id"}``.
  ``Idempotency-Key`` (1-256 chars, else 400 ``invalid_idempotency_key``), scoped per API key:
  the same key with the same body answers the first email's id again (plus the sandbox's
  ``Idempotent-Replayed: true``, which Resend does not send); a different body gets 409
  ``invalid_idempotent_request``. Keys are kept for good here (Resend keeps them 24 hours).
  Resend's 409 ``concurrent_idempotent_requests`` cannot happen: the key check and the insert
  are one SQLite transaction, so a concurrent duplicate waits and then replays.
* ``GET /emails/{id}`` -> the email object (``last_event`` is always ``delivered``).
* Auth: no key -> 401 ``missing_api_key``; an unknown key -> 403 ``invalid_api_key``.

Every email is also a post of the sandbox channel (channel ``email``, the email id as post
id), so it gets simulated metrics, budget changes and delivery log entries; campaign and item
come from the sandbox correlation headers, else from the ``campaign_id``/``item_id`` tags.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from agency.integrations.social import SANDBOX_CAMPAIGN_HEADER, SANDBOX_ITEM_HEADER
from agency.sandbox.providers import ProviderFace, SandboxContext
from agency.sandbox.providers.common import bearer_token, token_accepted
from agency.sandbox.store import PostInput, SandboxStore

_MAX_RECIPIENTS = 50
_MAX_KEY = 256
_TAG = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_ADDRESS = re.compile(r"^(?:[^<>]*<)?[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+>?$")

_TABLES = """
CREATE TABLE IF NOT EXISTS resend_emails (
    id TEXT PRIMARY KEY,
    api_key_hash TEXT NOT NULL,
    from_address TEXT NOT NULL,
    recipients TEXT NOT NULL,
    subject TEXT NOT NULL,
    html TEXT,
    text TEXT,
    tags TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


def error_response(status_code: int, message: str, retry_after_s: float | None = None) -> JSONResponse:
    """An error in this provider's documented shape."""
    return JSONResponse({"statusCode": status_code, "message": message, "name": "rate_limit_exceeded" if status_code == 429 else "internal_server_error"}, status_code)


def _error(status_code: int, name: str, message: str) -> JSONResponse:
    return JSONResponse({"statusCode": status_code, "message": message, "name": name}, status_code)


def _addresses(value: Any) -> list[str] | None:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and _ADDRESS.match(v.strip()) for v in values):
        return None
    return [v.strip() for v in values]


def _validate(payload: Any) -> tuple[dict[str, Any] | None, JSONResponse | None]:
    if not isinstance(payload, dict):
        return None, _error(422, "validation_error", "The request body must be a JSON object.")
    for field in ("from", "to", "subject"):
        if payload.get(field) in (None, "", []):
            return None, _error(422, "missing_required_field", f"Missing `{field}` field.")
    sender = payload["from"]
    if not isinstance(sender, str) or not _ADDRESS.match(sender.strip()):
        return None, _error(422, "validation_error", "Invalid `from` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format.")
    to = _addresses(payload["to"])
    if to is None or not 1 <= len(to) <= _MAX_RECIPIENTS:
        return None, _error(422, "validation_error", f"Invalid `to` field: 1 to {_MAX_RECIPIENTS} email addresses.")
    if not isinstance(payload["subject"], str):
        return None, _error(422, "validation_error", "Invalid `subject` field.")
    html, text = payload.get("html"), payload.get("text")
    if not (isinstance(html, str) and html.strip()) and not (isinstance(text, str) and text.strip()):
        return None, _error(422, "validation_error", "Missing `html` or `text` field.")
    tags = payload.get("tags") or []
    if not isinstance(tags, list) or not all(
        isinstance(t, dict) and _TAG.match(str(t.get("name", ""))) and _TAG.match(str(t.get("value", "")))
        for t in tags
    ):
        return None, _error(422, "validation_error", "Tags may only contain ASCII letters, numbers, underscores or dashes.")
    return {"from": sender.strip(), "to": to, "subject": payload["subject"],
            "html": html if isinstance(html, str) else None, "text": text if isinstance(text, str) else None,
            "tags": [{"name": t["name"], "value": t["value"]} for t in tags]}, None


def _plain(html: str) -> str:
    # The audience model scores copy; strip markup from html-only emails for it.
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def create_router(ctx: SandboxContext) -> APIRouter:
    router = APIRouter()
    store = SandboxStore(ctx.db_path)
    store.create_tables(_TABLES)

    def refused(request: Request) -> tuple[str, JSONResponse | None]:
        token = bearer_token(request)
        if not token:
            return "", _error(401, "missing_api_key", "Missing API key in the authorization header.")
        if not token_accepted(ctx.credentials, "resend", token):
            return "", _error(403, "invalid_api_key", "API key is invalid")
        return hashlib.sha256(token.encode()).hexdigest()[:16], None

    @router.post("/emails")
    async def send_email(request: Request) -> JSONResponse:
        account, refusal = refused(request)
        if refusal is not None:
            return refusal
        key = request.headers.get("idempotency-key")
        if key is not None and not 1 <= len(key) <= _MAX_KEY:
            return _error(400, "invalid_idempotency_key", f"The idempotency key has to be between 1-{_MAX_KEY} characters.")
        try:
            payload: Any = await request.json()
        except ValueError:
            payload = None
        email, invalid = _validate(payload)
        if invalid is not None or email is None:
            return invalid or _error(422, "validation_error", "invalid request")
        tags = {t["name"]: t["value"] for t in email["tags"]}
        campaign_id = request.headers.get(SANDBOX_CAMPAIGN_HEADER) or tags.get("campaign_id", "")
        item_id = request.headers.get(SANDBOX_ITEM_HEADER) or tags.get("item_id", "")
        fingerprint = hashlib.sha256(json.dumps(email, sort_keys=True).encode()).hexdigest()
        # Keys are per API key, like Resend's; without one every request is a new email.
        store_key = f"resend:{account}:{key}" if key is not None else f"resend:{account}:none:{uuid.uuid4()}"
        email_id = str(uuid.uuid4())

        def insert_email(conn, post) -> None:
            conn.execute(
                "INSERT INTO resend_emails (id, api_key_hash, from_address, recipients, subject, html,"
                " text, tags, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (post.id, account, email["from"], json.dumps(email["to"]), email["subject"],
                 email["html"], email["text"], json.dumps(email["tags"]), post.created_at),
            )

        body_text = email["text"] or _plain(email["html"] or "")
        outcome = await run_in_threadpool(
            lambda: store.publish(
                store_key, fingerprint,
                PostInput("email", campaign_id, item_id, "email", email["subject"][:150], body_text, 0),
                post_id=email_id, on_create=insert_email,
            )
        )
        if outcome.kind == "conflict":
            return _error(409, "invalid_idempotent_request",
                          "This idempotency key has already been used on a request that had a different payload.")
        headers = {"Idempotent-Replayed": "true"} if outcome.kind == "replayed" else None
        return JSONResponse({"id": outcome.post.id}, 200, headers=headers)

    @router.get("/emails/{email_id}")
    def get_email(email_id: str, request: Request) -> JSONResponse:
        account, refusal = refused(request)
        if refusal is not None:
            return refusal
        rows = store.query("SELECT * FROM resend_emails WHERE id = ? AND api_key_hash = ?", (email_id, account))
        if not rows:
            return _error(404, "not_found", "Email not found")
        row = rows[0]
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(row["created_at"])))  # type: ignore[arg-type]
        return JSONResponse({
            "object": "email", "id": row["id"], "from": row["from_address"],
            "to": json.loads(str(row["recipients"])), "subject": row["subject"], "html": row["html"],
            "text": row["text"], "tags": json.loads(str(row["tags"])), "cc": None, "bcc": None,
            "reply_to": None, "created_at": f"{created}+00", "last_event": "delivered",
        })

    return router


FACE = ProviderFace(name="resend", build=create_router, error=error_response)
