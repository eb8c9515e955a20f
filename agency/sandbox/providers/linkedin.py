"""Sandbox face: LinkedIn Posts API (/rest/posts, versioned).

* ``POST /rest/posts`` (headers ``LinkedIn-Version: YYYYMM`` and ``X-Restli-Protocol-Version:
  2.0.0``) with ``author``, ``commentary``, ``visibility``, ``distribution``,
  ``lifecycleState`` -> 201, empty body, the new post's urn in ``x-restli-id``. The same
  commentary again from the same author -> 422 ``DUPLICATE_POST`` "Content is a duplicate of
  {urn}", as LinkedIn answers.
* ``GET /rest/posts/{urn}`` (urn percent-encoded) -> the post.
* ``GET /rest/posts?q=author&author={urn}&count=&start=`` -> ``{"elements", "paging"}``,
  newest first.

Every post is also a post of the sandbox channel (channel ``social``, format ``linkedin_post``,
the urn as post id), so it gets simulated metrics, budget changes and delivery log entries.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from agency.integrations.social import SANDBOX_CAMPAIGN_HEADER, SANDBOX_ITEM_HEADER, little_text_unescape
from agency.sandbox.providers import ProviderFace, SandboxContext
from agency.sandbox.providers.common import bearer_token, token_accepted
from agency.sandbox.store import PostInput, SandboxStore

_MAX_COMMENTARY = 3_000
_AUTHOR = re.compile(r"^urn:li:(?:person|organization):[A-Za-z0-9_-]+$")
_VERSION = re.compile(r"^20\d{2}(0[1-9]|1[0-2])(\.\d{2})?$")
_VISIBILITY = {"PUBLIC", "CONNECTIONS", "LOGGED_IN", "CONTAINER"}
_FEED = {"MAIN_FEED", "NONE"}

_TABLES = """
CREATE TABLE IF NOT EXISTS linkedin_posts (
    urn TEXT PRIMARY KEY,
    author TEXT NOT NULL,
    commentary TEXT NOT NULL,
    visibility TEXT NOT NULL,
    distribution TEXT NOT NULL,
    lifecycle_state TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS linkedin_posts_by_author ON linkedin_posts (author, created_at);
"""


def error_response(status_code: int, message: str, retry_after_s: float | None = None) -> JSONResponse:
    """An error in this provider's documented shape."""
    return JSONResponse({"status": status_code, "serviceErrorCode": 0, "code": "TOO_MANY_REQUESTS" if status_code == 429 else "INTERNAL_SERVER_ERROR", "message": message}, status_code)


def _error(status_code: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"status": status_code, "code": code, "message": message}, status_code)


def _input_error(status_code: int, message: str, code: str, field: str | None = None) -> JSONResponse:
    detail: dict[str, Any] = {"description": message, "input": {}, "code": code}
    if field is not None:
        detail["input"] = {"inputPath": {"fieldPath": field}}
    return JSONResponse(
        {"errorDetailType": "com.linkedin.common.error.BadRequest", "message": message,
         "errorDetails": {"inputErrors": [detail]}, "status": status_code}, status_code,
    )


def _post_json(row: dict[str, Any]) -> dict[str, Any]:
    ms = int(float(row["created_at"]) * 1000)
    return {
        "id": row["urn"],
        "author": row["author"],
        "commentary": row["commentary"],
        "visibility": row["visibility"],
        "distribution": json.loads(str(row["distribution"])),
        "lifecycleState": row["lifecycle_state"],
        "isReshareDisabledByAuthor": False,
        "createdAt": ms,
        "publishedAt": ms,
        "lastModifiedAt": ms,
    }


def _validate(payload: Any) -> tuple[dict[str, Any] | None, JSONResponse | None]:
    if not isinstance(payload, dict):
        return None, _input_error(400, "the request body must be a JSON object", "INVALID_BODY")
    author = payload.get("author")
    if not isinstance(author, str) or not _AUTHOR.match(author):
        return None, _input_error(422, "author must be a person or organization urn", "INVALID_URN", "/author")
    commentary = payload.get("commentary")
    if not isinstance(commentary, str) or not commentary.strip():
        return None, _input_error(422, "commentary must be a non-empty string", "FIELD_REQUIRED", "/commentary")
    if len(commentary) > _MAX_COMMENTARY:
        return None, _input_error(422, f"commentary is over {_MAX_COMMENTARY} characters", "MAX_LENGTH_EXCEEDED", "/commentary")
    if payload.get("visibility") not in _VISIBILITY:
        return None, _input_error(422, f"visibility must be one of {sorted(_VISIBILITY)}", "INVALID_ENUM", "/visibility")
    distribution = payload.get("distribution")
    if not isinstance(distribution, dict) or distribution.get("feedDistribution") not in _FEED:
        return None, _input_error(422, "distribution.feedDistribution must be MAIN_FEED or NONE", "INVALID_ENUM", "/distribution/feedDistribution")
    if payload.get("lifecycleState") != "PUBLISHED":
        return None, _input_error(422, "lifecycleState must be PUBLISHED", "INVALID_ENUM", "/lifecycleState")
    return payload, None


def create_router(ctx: SandboxContext) -> APIRouter:
    router = APIRouter()
    store = SandboxStore(ctx.db_path)
    store.create_tables(_TABLES)

    def refused(request: Request, write: bool) -> JSONResponse | None:
        """Auth and the versioning headers every /rest call needs, in LinkedIn's order."""
        if not token_accepted(ctx.credentials, "linkedin", bearer_token(request)):
            return JSONResponse({"status": 401, "serviceErrorCode": 65600, "code": "INVALID_ACCESS_TOKEN",
                                 "message": "Invalid access token"}, 401)
        version = request.headers.get("linkedin-version")
        if not version:
            return _error(400, "VERSION_MISSING", "A version must be present. Please specify a version by adding the LinkedIn-Version header.")
        if not _VERSION.match(version):
            return _error(426, "NONEXISTENT_VERSION", f"Requested version {version} is not active")
        if write and request.headers.get("x-restli-protocol-version") != "2.0.0":
            return _error(400, "ILLEGAL_ARGUMENT", "X-Restli-Protocol-Version: 2.0.0 is required")
        return None

    @router.post("/rest/posts")
    async def create_post(request: Request) -> Response:
        if (refusal := refused(request, write=True)) is not None:
            return refusal
        try:
            payload: Any = await request.json()
        except ValueError:
            payload = None
        post, invalid = _validate(payload)
        if invalid is not None or post is None:
            return invalid or _input_error(400, "invalid request", "INVALID_BODY")
        author, commentary = post["author"], post["commentary"]
        content_key = f"linkedin:{author}:{hashlib.sha256(' '.join(commentary.split()).encode()).hexdigest()}"
        urn = f"urn:li:share:{7 * 10**18 + uuid.uuid4().int % 10**18}"

        def insert_post(conn, created) -> None:
            conn.execute(
                "INSERT INTO linkedin_posts (urn, author, commentary, visibility, distribution,"
                " lifecycle_state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (created.id, author, commentary, post["visibility"], json.dumps(post["distribution"]),
                 post["lifecycleState"], created.created_at),
            )

        outcome = await run_in_threadpool(
            lambda: store.publish(
                content_key, content_key,
                PostInput("social", request.headers.get(SANDBOX_CAMPAIGN_HEADER, ""),
                          request.headers.get(SANDBOX_ITEM_HEADER, ""), "linkedin_post", "",
                          little_text_unescape(commentary), 0),
                post_id=urn, replay_logged_as=("rejected", 422, "DUPLICATE_POST"),
                on_create=insert_post,
            )
        )
        if outcome.kind != "created":
            return _input_error(
                422,
                "com.linkedin.content.common.exception.BadRequestResponseException: "
                f"Content is a duplicate of {outcome.post.id}",
                "DUPLICATE_POST",
            )
        return Response(status_code=201, headers={"x-restli-id": outcome.post.id, "x-linkedin-id": outcome.post.id})

    @router.get("/rest/posts/{post_urn}")
    def get_post(post_urn: str, request: Request) -> JSONResponse:
        if (refusal := refused(request, write=False)) is not None:
            return refusal
        rows = store.query("SELECT * FROM linkedin_posts WHERE urn = ?", (post_urn,))
        if not rows:
            return _error(404, "NOT_FOUND", f"Post {post_urn} does not exist")
        return JSONResponse(_post_json(rows[0]))

    @router.get("/rest/posts")
    def find_posts(request: Request, q: str = "", author: str = "", count: int = 10, start: int = 0) -> JSONResponse:
        if (refusal := refused(request, write=False)) is not None:
            return refusal
        if q != "author" or not _AUTHOR.match(author):
            return _input_error(400, "the author finder needs q=author and an author urn", "INVALID_PARAM", "/author")
        if not 1 <= count <= 100 or start < 0:
            return _input_error(400, "count must be 1..100 and start >= 0", "INVALID_PARAM", "/count")
        rows = store.query(
            "SELECT * FROM linkedin_posts WHERE author = ? ORDER BY created_at DESC, urn DESC LIMIT ? OFFSET ?",
            (author, count, start),
        )
        total = store.query("SELECT COUNT(*) AS n FROM linkedin_posts WHERE author = ?", (author,))[0]["n"]
        return JSONResponse({"elements": [_post_json(r) for r in rows],
                             "paging": {"start": start, "count": count, "total": total}})

    return router


FACE = ProviderFace(name="linkedin", build=create_router, error=error_response)
