"""Sandbox face: Instagram Graph API content publishing (image posts), under ``/{version}``.

* ``POST /{v}/{ig-user-id}/media`` (form or query: ``image_url``, ``caption``) -> ``{"id"}`` of a
  container; it is ``FINISHED`` at once (the face does not fetch the image; it checks the URL).
* ``POST /{v}/{ig-user-id}/media_publish`` (``creation_id``) -> ``{"id"}`` of the new media. A
  container publishes once: afterwards it is ``PUBLISHED`` and publishing it again answers a
  Graph error naming it (code 9007 "media ... has already been published").
* ``GET /{v}/{id}?fields=...``: a container (``id``, ``status_code``, ``status``) or a media
  (``id``, ``caption``, ``media_type``, ``media_url``, ``permalink``, ``timestamp``).
* ``GET /{v}/{ig-user-id}/media?fields=&limit=&after=`` -> ``{"data", "paging"}``, newest first.

Auth: ``Authorization: Bearer`` or the ``access_token`` parameter. Errors are Graph's
``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``; an injected 429 is
answered as Graph throttles, HTTP 400 with code 4 (application request limit), and a 5xx as
code 2 (temporary), ``is_transient: true``.

Every media is also a post of the sandbox channel (channel ``social``, format
``instagram_caption``, the media id as post id), keyed by its container, so a container can only
ever make one post; the campaign and item come from the sandbox correlation headers sent with
the container.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from agency.integrations.social import SANDBOX_CAMPAIGN_HEADER, SANDBOX_ITEM_HEADER
from agency.sandbox.providers import ProviderFace, SandboxContext
from agency.sandbox.providers.common import bearer_token, token_accepted
from agency.sandbox.store import PostInput, SandboxStore

NAME = "instagram"
_MAX_CAPTION = 2_200
_VERSION = "{version}"
_VERSION_FORMAT = re.compile(r"^v\d+\.\d+$")

_TABLES = """
CREATE TABLE IF NOT EXISTS instagram_containers (
    id TEXT PRIMARY KEY,
    ig_user_id TEXT NOT NULL,
    image_url TEXT NOT NULL,
    caption TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    status_code TEXT NOT NULL,
    media_id TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS instagram_media (
    id TEXT PRIMARY KEY,
    ig_user_id TEXT NOT NULL,
    container_id TEXT NOT NULL UNIQUE,
    caption TEXT NOT NULL,
    image_url TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS instagram_media_by_user ON instagram_media (ig_user_id, created_at);
"""


def _graph_error(http_status: int, message: str, code: int, subcode: int | None = None,
                 type_: str = "OAuthException", transient: bool = False) -> JSONResponse:
    error: dict[str, Any] = {"message": message, "type": type_, "code": code,
                             "fbtrace_id": secrets.token_urlsafe(12)}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient:
        error["is_transient"] = True
    return JSONResponse({"error": error}, http_status)


def error_response(status_code: int, message: str, retry_after_s: float | None = None) -> JSONResponse:
    """An error in this provider's documented shape: Graph throttles with HTTP 400 and code 4."""
    if status_code == 429:
        return _graph_error(400, f"(#4) Application request limit reached ({message})", 4, transient=True)
    return _graph_error(status_code, f"An unexpected error has occurred. Please retry your request later. ({message})",
                        2, type_="OAuthException", transient=True)


def _unsupported(node: str) -> JSONResponse:
    return _graph_error(400, f"Unsupported get request. Object with ID '{node}' does not exist, cannot be loaded"
                             " due to missing permissions, or does not support this operation.", 100, 33, "GraphMethodException")


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(ts))


def _graph_id() -> str:
    # Graph ids are decimal strings (17-18 digits for IG media and containers).
    return str(17_800_000_000_000_000 + uuid.uuid4().int % 10**17)


def create_router(ctx: SandboxContext) -> APIRouter:
    router = APIRouter()
    store = SandboxStore(ctx.db_path)
    store.create_tables(_TABLES)

    async def params_of(request: Request) -> dict[str, str]:
        # Graph reads parameters from the query string and from a form or JSON body alike.
        values = dict(request.query_params)
        if request.method == "POST":
            kind = request.headers.get("content-type", "")
            if kind.startswith("application/json"):
                try:
                    payload = await request.json()
                except ValueError:
                    payload = None
                if isinstance(payload, dict):
                    values.update({k: str(v) for k, v in payload.items()})
            else:
                form = await request.form()
                values.update({k: str(v) for k, v in form.items()})
        return values

    def authorised(request: Request, params: dict[str, str]) -> bool:
        if not _VERSION_FORMAT.match(request.path_params.get("version", "")):
            return False  # an unknown version: Graph refuses it too
        token = bearer_token(request) or params.get("access_token", "")
        return token_accepted(ctx.credentials, NAME, token)

    def invalid_token() -> JSONResponse:
        return _graph_error(400, "Invalid OAuth access token - Cannot parse access token", 190)

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(ctx.db_path, timeout=30.0, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn

    @router.post(f"/{_VERSION}/{{ig_user_id}}/media")
    async def create_container(version: str, ig_user_id: str, request: Request) -> JSONResponse:
        params = await params_of(request)
        if not authorised(request, params):
            return invalid_token()
        if not ig_user_id.isdigit():
            return _unsupported(ig_user_id)
        image_url, caption = params.get("image_url", ""), params.get("caption", "")
        parsed = urlsplit(image_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            return _graph_error(400, "The parameter image_url is required and must be a public URL.", 100, 2207052)
        if len(caption) > _MAX_CAPTION:
            return _graph_error(400, f"The caption is over {_MAX_CAPTION} characters.", 100, 2207026)
        container_id = _graph_id()
        conn = connect()
        try:
            conn.execute(
                "INSERT INTO instagram_containers (id, ig_user_id, image_url, caption, campaign_id, item_id,"
                " status_code, media_id, created_at) VALUES (?, ?, ?, ?, ?, ?, 'FINISHED', NULL, ?)",
                (container_id, ig_user_id, image_url, caption, request.headers.get(SANDBOX_CAMPAIGN_HEADER, ""),
                 request.headers.get(SANDBOX_ITEM_HEADER, ""), time.time()),
            )
        finally:
            conn.close()
        return JSONResponse({"id": container_id})

    @router.post(f"/{_VERSION}/{{ig_user_id}}/media_publish")
    async def media_publish(version: str, ig_user_id: str, request: Request) -> JSONResponse:
        params = await params_of(request)
        if not authorised(request, params):
            return invalid_token()
        creation_id = params.get("creation_id", "")
        rows = store.query("SELECT * FROM instagram_containers WHERE id = ? AND ig_user_id = ?", (creation_id, ig_user_id))
        if not rows:
            return _graph_error(400, "The parameter creation_id is required and must be a container of this user.", 100, 2207008)
        container = rows[0]
        media_id = _graph_id()

        def record(conn: sqlite3.Connection, post: Any) -> None:
            conn.execute(
                "INSERT INTO instagram_media (id, ig_user_id, container_id, caption, image_url, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (post.id, ig_user_id, creation_id, container["caption"], container["image_url"], post.created_at),
            )
            conn.execute("UPDATE instagram_containers SET status_code = 'PUBLISHED', media_id = ? WHERE id = ?",
                         (post.id, creation_id))

        # Keyed by the container: publishing it twice (even concurrently) makes one post.
        key = f"{NAME}:container:{creation_id}"
        outcome = await run_in_threadpool(
            lambda: store.publish(
                key, key,
                PostInput("social", str(container["campaign_id"]), str(container["item_id"]), "instagram_caption",
                          "", str(container["caption"]), 0),
                post_id=media_id, replay_logged_as=("rejected", 400, "already_published"), on_create=record,
            )
        )
        if outcome.kind != "created":
            return _graph_error(400, f"The media {creation_id} has already been published (media {outcome.post.id}).",
                                9007, 2207006)
        return JSONResponse({"id": outcome.post.id})

    @router.get(f"/{_VERSION}/{{ig_user_id}}/media")
    async def list_media(version: str, ig_user_id: str, request: Request, limit: int = 25, after: str = "") -> JSONResponse:
        params = dict(request.query_params)
        if not authorised(request, params):
            return invalid_token()
        if not 1 <= limit <= 100:
            return _graph_error(400, "(#100) limit must be between 1 and 100", 100)
        offset = 0
        if after:
            try:
                offset = int(after, 16)
            except ValueError:
                return _graph_error(400, "(#100) Invalid cursor", 100)
        fields = set((params.get("fields") or "id").split(","))
        rows = store.query(
            "SELECT * FROM instagram_media WHERE ig_user_id = ? ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            (ig_user_id, limit + 1, offset),
        )
        page, more = rows[:limit], len(rows) > limit
        body: dict[str, Any] = {"data": [media_json(r, fields) for r in page]}
        if page:
            body["paging"] = {"cursors": {"before": format(offset, "x"), "after": format(offset + len(page), "x")}}
            if more:
                body["paging"]["next"] = (f"{str(request.base_url).rstrip('/')}/{NAME}/{version}/{ig_user_id}/media"
                                          f"?limit={limit}&after={format(offset + len(page), 'x')}")
        return JSONResponse(body)

    def media_json(row: dict[str, Any], fields: set[str]) -> dict[str, Any]:
        full = {
            "id": row["id"], "caption": row["caption"], "media_type": "IMAGE", "media_url": row["image_url"],
            "permalink": f"https://www.instagram.com/p/{row['id']}/", "timestamp": _iso(float(row["created_at"])),
        }
        return {k: v for k, v in full.items() if k in fields or k == "id"}

    @router.get(f"/{_VERSION}/{{node_id}}")
    async def get_node(version: str, node_id: str, request: Request) -> JSONResponse:
        params = dict(request.query_params)
        if not authorised(request, params):
            return invalid_token()
        fields = set((params.get("fields") or "id").split(","))
        media = store.query("SELECT * FROM instagram_media WHERE id = ?", (node_id,))
        if media:
            return JSONResponse(media_json(media[0], fields))
        container = store.query("SELECT * FROM instagram_containers WHERE id = ?", (node_id,))
        if container:
            full = {"id": node_id, "status_code": container[0]["status_code"], "status": container[0]["status_code"]}
            return JSONResponse({k: v for k, v in full.items() if k in fields or k == "id"})
        return _unsupported(node_id)

    return router


FACE = ProviderFace(name=NAME, build=create_router, error=error_response)
