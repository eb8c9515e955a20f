"""Sandbox face: WordPress REST API posts (``/wp-json/wp/v2/posts``), one site.

* ``POST /wp-json/wp/v2/posts`` ``{"title", "content", "status", "slug"?, "excerpt"?, "meta"?}``
  -> 201 with the post (``id``, ``date``, ``slug``, ``status``, ``link``, ``title.rendered``,
  ``content.rendered``...). ``title`` and ``content`` may be strings or ``{"raw": ...}``.
* ``POST /wp-json/wp/v2/posts/{id}`` (update; ``status: "publish"`` publishes a draft) -> 200.
* ``GET /wp-json/wp/v2/posts[?slug=a,b&status=draft,publish&context=edit&per_page=&page=
  &orderby=id|date&order=asc|desc]`` -> a JSON array, ``X-WP-Total``/``X-WP-TotalPages``
  headers. Statuses other than ``publish`` and ``context=edit`` need authentication.
* ``GET /wp-json/wp/v2/posts/{id}``; ``DELETE /wp-json/wp/v2/posts/{id}?force=true``.

As WordPress does: no idempotency keys and no duplicate refusal (every create is a new post);
a draft keeps the slug it was given, a published post gets a unique one (``-2``, ``-3``... on a
clash with any other post). Errors are ``{"code", "message", "data": {"status"}}``.

Authentication: HTTP Basic with an application password (the password is checked) or a bearer
token, both against the face's accepted tokens. A post becomes a post of the sandbox channel when
it is published (channel ``blog``, format ``blog_post``, the WordPress id as post id), so it gets
metrics, budgets and delivery log entries; drafts stay on the site only. The sandbox keeps
published posts (they carry metrics): deleting one is refused.
"""

from __future__ import annotations

import base64
import html
import json
import re
import sqlite3
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from agency.integrations.social import SANDBOX_CAMPAIGN_HEADER, SANDBOX_ITEM_HEADER
from agency.sandbox import sqlite
from agency.sandbox.providers import ProviderFace, SandboxContext
from agency.sandbox.providers.common import bearer_token, token_accepted
from agency.sandbox.store import PostInput, SandboxStore

NAME = "wordpress"
_STATUSES = {"publish", "future", "draft", "pending", "private"}
_SLUG = re.compile(r"^[a-z0-9-]{1,200}$")
_TAG = re.compile(r"<[^>]+>")

_TABLES = """
CREATE TABLE IF NOT EXISTS wordpress_posts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    slug TEXT NOT NULL,
    status TEXT NOT NULL,
    title TEXT NOT NULL,
    content TEXT NOT NULL,
    excerpt TEXT NOT NULL,
    meta TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    modified_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS wordpress_posts_by_slug ON wordpress_posts (slug);
"""


def error_response(status_code: int, message: str, retry_after_s: float | None = None) -> JSONResponse:
    """An error in this provider's documented shape."""
    code = "rest_too_many_requests" if status_code == 429 else "internal_server_error"
    return JSONResponse({"code": code, "message": message, "data": {"status": status_code}}, status_code)


def _error(status_code: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "data": {"status": status_code}}, status_code)


def _credential(request: Request) -> str:
    """The bearer token, or the password of HTTP Basic (application passwords)."""
    token = bearer_token(request)
    if token:
        return token
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        _, _, password = base64.b64decode(value.strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return ""
    return "".join(password.split())  # WordPress ignores the spaces it displays


def _raw(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("raw")
    return value if isinstance(value, str) else None


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))


def _text_of(content: str) -> str:
    """What a reader sees of the content (tags dropped, entities decoded)."""
    text = re.sub(r"<br\s*/?>", "\n", re.sub(r"</p>\s*<p>", "\n\n", content))
    return html.unescape(_TAG.sub("", text)).strip()


def create_router(ctx: SandboxContext) -> APIRouter:
    router = APIRouter()
    store = SandboxStore(ctx.db_path)
    store.create_tables(_TABLES)

    def signed_in(request: Request) -> bool:
        return token_accepted(ctx.credentials, NAME, _credential(request))

    def post_json(row: dict[str, Any], request: Request, edit: bool) -> dict[str, Any]:
        site = str(request.base_url).rstrip("/") + f"/{NAME}"
        rendered = {"rendered": row["title"]}
        content = {"rendered": row["content"], "protected": False}
        if edit:
            rendered["raw"] = row["title"]
            content["raw"] = row["content"]
        return {
            "id": row["id"],
            "date": _iso(float(row["created_at"])),
            "date_gmt": _iso(float(row["created_at"])),
            "modified_gmt": _iso(float(row["modified_at"])),
            "slug": row["slug"],
            "status": row["status"],
            "type": "post",
            "link": f"{site}/{row['slug']}/" if row["status"] == "publish" else f"{site}/?p={row['id']}",
            "title": rendered,
            "content": content,
            "excerpt": {"rendered": row["excerpt"], "protected": False},
            "author": 1,
            "meta": json.loads(str(row["meta"])),
        }

    def unique_slug(conn: sqlite3.Connection, slug: str, post_id: int) -> str:
        # As wp_unique_post_slug: a clash with any other post (drafts included) gets -2, -3...
        candidate, n = slug, 1
        while conn.execute("SELECT 1 FROM wordpress_posts WHERE slug = ? AND id != ?", (candidate, post_id)).fetchone():
            n += 1
            candidate = f"{slug}-{n}"
        return candidate

    def site_write():
        # The site's own rows, written as the store writes (BEGIN IMMEDIATE).
        return sqlite.write_transaction(ctx.db_path)

    def go_live(post_id: int, campaign_id: str, item_id: str) -> None:
        """Publish: a unique slug, and a post of the sandbox channel, in one transaction."""
        row = store.query("SELECT * FROM wordpress_posts WHERE id = ?", (post_id,))[0]

        def mark_published(conn: sqlite3.Connection, _post: Any) -> None:
            slug = unique_slug(conn, str(row["slug"]), post_id)
            conn.execute("UPDATE wordpress_posts SET status = 'publish', slug = ?, modified_at = ? WHERE id = ?",
                         (slug, time.time(), post_id))

        key = f"{NAME}:{post_id}"  # one channel post per WordPress post: WordPress dedupes nothing
        store.publish(key, key, PostInput(
            "blog", campaign_id or str(row["campaign_id"]), item_id or str(row["item_id"]), "blog_post",
            str(row["title"]), _text_of(str(row["content"])), 0,
        ), post_id=str(post_id), on_create=mark_published)

    def write(request: Request, payload: Any, post_id: int | None) -> JSONResponse:
        if not isinstance(payload, dict):
            return _error(400, "rest_invalid_json", "Invalid JSON body passed.")
        status = payload.get("status", "draft" if post_id is None else None)
        if status is not None and status not in _STATUSES:
            return _error(400, "rest_invalid_param", "Invalid parameter(s): status")
        slug = payload.get("slug")
        if slug is not None and (not isinstance(slug, str) or not _SLUG.match(slug)):
            return _error(400, "rest_invalid_param", "Invalid parameter(s): slug")
        title, content = _raw(payload.get("title")), _raw(payload.get("content"))
        meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else None
        campaign_id = request.headers.get(SANDBOX_CAMPAIGN_HEADER, "")
        item_id = request.headers.get(SANDBOX_ITEM_HEADER, "")
        now = time.time()
        with site_write() as conn:
            if post_id is None:
                if not (title or "").strip() and not (content or "").strip():
                    return _error(400, "empty_content", "Content, title, and excerpt are empty.")
                base = slug or re.sub(r"[^a-z0-9]+", "-", (title or "").lower()).strip("-")[:200] or "post"
                cursor = conn.execute(
                    "INSERT INTO wordpress_posts (slug, status, title, content, excerpt, meta, campaign_id,"
                    " item_id, created_at, modified_at) VALUES (?, 'draft', ?, ?, ?, ?, ?, ?, ?, ?)",
                    (base, title or "", content or "", _raw(payload.get("excerpt")) or "",
                     json.dumps(meta or {}), campaign_id, item_id, now, now),
                )
                post_id = int(cursor.lastrowid or 0)
                created = True
            else:
                row = conn.execute("SELECT * FROM wordpress_posts WHERE id = ?", (post_id,)).fetchone()
                if row is None:
                    return _error(404, "rest_post_invalid_id", "Invalid post ID.")
                if row["status"] == "publish" and status not in (None, "publish"):
                    return _error(400, "rest_cannot_edit", "The sandbox keeps published posts published.")
                updates = {k: v for k, v in (("title", title), ("content", content)) if v is not None}
                if slug is not None and row["status"] != "publish":
                    updates["slug"] = slug
                if meta is not None:
                    updates["meta"] = json.dumps({**json.loads(row["meta"]), **meta})
                for column, value in updates.items():
                    conn.execute(f"UPDATE wordpress_posts SET {column} = ?, modified_at = ? WHERE id = ?",
                                 (value, now, post_id))
                created = False
            current = conn.execute("SELECT status FROM wordpress_posts WHERE id = ?", (post_id,)).fetchone()["status"]
            if status is not None and status not in ("publish", current):
                conn.execute("UPDATE wordpress_posts SET status = ? WHERE id = ?", (status, post_id))
        if status == "publish" and current != "publish":
            go_live(post_id, campaign_id, item_id)
        row = store.query("SELECT * FROM wordpress_posts WHERE id = ?", (post_id,))[0]
        return JSONResponse(post_json(row, request, edit=True), 201 if created else 200)

    async def body(request: Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            return None

    @router.post("/wp-json/wp/v2/posts")
    async def create_post(request: Request) -> JSONResponse:
        if not signed_in(request):
            return _error(401, "rest_cannot_create", "Sorry, you are not allowed to create posts as this user.")
        payload = await body(request)
        return await run_in_threadpool(write, request, payload, None)

    @router.post("/wp-json/wp/v2/posts/{post_id}")
    async def update_post(post_id: int, request: Request) -> JSONResponse:
        if not signed_in(request):
            return _error(401, "rest_cannot_edit", "Sorry, you are not allowed to edit this post.")
        payload = await body(request)
        return await run_in_threadpool(write, request, payload, post_id)

    @router.get("/wp-json/wp/v2/posts")
    def list_posts(request: Request, slug: str = "", status: str = "publish", context: str = "view",
                   per_page: int = 10, page: int = 1, orderby: str = "date", order: str = "desc") -> Response:
        statuses = {s for s in status.split(",") if s}
        if statuses == {"any"}:
            statuses = set(_STATUSES)
        if not statuses <= _STATUSES or not 1 <= per_page <= 100 or page < 1 \
                or orderby not in ("id", "date") or order not in ("asc", "desc"):
            return _error(400, "rest_invalid_param", "Invalid parameter(s): status, per_page, page, orderby or order")
        if (statuses != {"publish"} or context == "edit") and not signed_in(request):
            return _error(401, "rest_forbidden_context" if context == "edit" else "rest_invalid_param",
                          "Sorry, you are not allowed to edit posts in this post type.")
        where, params = [f"status IN ({', '.join('?' for _ in statuses)})"], list(statuses)
        slugs = [s for s in slug.split(",") if s]
        if slugs:
            where.append(f"slug IN ({', '.join('?' for _ in slugs)})")
            params.extend(slugs)
        column = "id" if orderby == "id" else "created_at"
        clause = " AND ".join(where)
        rows = store.query(
            f"SELECT * FROM wordpress_posts WHERE {clause} ORDER BY {column} {order.upper()}, id {order.upper()}"
            " LIMIT ? OFFSET ?", (*params, per_page, (page - 1) * per_page),
        )
        total = int(store.query(f"SELECT COUNT(*) AS n FROM wordpress_posts WHERE {clause}", tuple(params))[0]["n"])
        return JSONResponse([post_json(r, request, edit=context == "edit") for r in rows], headers={
            "X-WP-Total": str(total), "X-WP-TotalPages": str(max(1, -(-total // per_page)))})

    @router.get("/wp-json/wp/v2/posts/{post_id}")
    def get_post(post_id: int, request: Request, context: str = "view") -> JSONResponse:
        rows = store.query("SELECT * FROM wordpress_posts WHERE id = ?", (post_id,))
        if not rows or (rows[0]["status"] != "publish" and not signed_in(request)):
            return _error(404, "rest_post_invalid_id", "Invalid post ID.")
        return JSONResponse(post_json(rows[0], request, edit=context == "edit" and signed_in(request)))

    @router.delete("/wp-json/wp/v2/posts/{post_id}")
    def delete_post(post_id: int, request: Request, force: bool = False) -> JSONResponse:
        if not signed_in(request):
            return _error(401, "rest_cannot_delete", "Sorry, you are not allowed to delete this post.")
        with site_write() as conn:
            row = conn.execute("SELECT * FROM wordpress_posts WHERE id = ?", (post_id,)).fetchone()
            if row is None:
                return _error(404, "rest_post_invalid_id", "Invalid post ID.")
            if row["status"] == "publish":
                return _error(400, "rest_cannot_delete", "The sandbox keeps published posts (they carry metrics).")
            if not force:
                return _error(501, "rest_trash_not_supported", "Posts do not support trashing here. Set 'force=true' to delete.")
            conn.execute("DELETE FROM wordpress_posts WHERE id = ?", (post_id,))
        return JSONResponse({"deleted": True, "previous": post_json(dict(row), request, edit=True)})

    return router


FACE = ProviderFace(name=NAME, build=create_router, error=error_response)
