"""Sandbox face: X API v2 (POST /2/tweets, user timelines).

* ``POST /2/tweets`` ``{"text"}`` -> 201 ``{"data": {"id", "text", "edit_history_tweet_ids"}}``.
  The same text again from the same user -> 403 "You are not allowed to create a Tweet with
  duplicate content." (as X answers; the reply does not name the existing tweet).
* ``GET /2/users/me`` -> the user the bearer token belongs to (one user per token).
* ``GET /2/users/{id}/tweets?max_results=&pagination_token=`` -> newest first, with ``meta``.

Every tweet is also a post of the sandbox channel (channel ``social``, format ``x_post``, the
tweet id as post id), so it gets simulated metrics, budget changes and delivery log entries; the
campaign and item come from the sandbox-only correlation headers the adapter sends.
"""

from __future__ import annotations

import hashlib
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

_MAX_TWEET = 280
DUPLICATE_DETAIL = "You are not allowed to create a Tweet with duplicate content."

_TABLES = """
CREATE TABLE IF NOT EXISTS x_tweets (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS x_tweets_by_user ON x_tweets (user_id, created_at);
"""


def error_response(status_code: int, message: str, retry_after_s: float | None = None) -> JSONResponse:
    """An error in this provider's documented shape."""
    return JSONResponse({"title": "Too Many Requests" if status_code == 429 else "Service Unavailable", "detail": message, "type": "about:blank", "status": status_code}, status_code)


def _problem(status_code: int, title: str, detail: str, type_: str = "about:blank") -> JSONResponse:
    return JSONResponse({"title": title, "detail": detail, "type": type_, "status": status_code}, status_code)


def _invalid(message: str) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message}], "title": "Invalid Request",
         "detail": "One or more parameters to your request was invalid.",
         "type": "https://api.twitter.com/2/problems/invalid-request"}, 400,
    )


def user_id_for(token: str) -> str:
    """A stable numeric user id per token (each token is one X account)."""
    return str(10**17 + int(hashlib.sha256(token.encode()).hexdigest()[:13], 16))


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def create_router(ctx: SandboxContext) -> APIRouter:
    router = APIRouter()
    store = SandboxStore(ctx.db_path)
    store.create_tables(_TABLES)

    def authorised(request: Request) -> str | None:
        token = bearer_token(request)
        return user_id_for(token) if token_accepted(ctx.credentials, "x", token) else None

    def unauthorized() -> JSONResponse:
        return _problem(401, "Unauthorized", "Unauthorized")

    @router.post("/2/tweets")
    async def create_tweet(request: Request) -> JSONResponse:
        user_id = authorised(request)
        if user_id is None:
            return unauthorized()
        try:
            payload: Any = await request.json()
        except ValueError:
            return _invalid("The request body is not valid JSON.")
        text = payload.get("text") if isinstance(payload, dict) else None
        if not isinstance(text, str) or not text.strip():
            return _invalid("$.text: a non-empty string is required.")
        if len(text) > _MAX_TWEET:
            return _invalid(f"$.text: {len(text)} characters; the limit is {_MAX_TWEET}.")
        campaign_id = request.headers.get(SANDBOX_CAMPAIGN_HEADER, "")
        item_id = request.headers.get(SANDBOX_ITEM_HEADER, "")
        # One tweet per user and text: the duplicate rule is the store's unique key, so two
        # concurrent identical tweets create one and refuse the other.
        content_key = f"x:{user_id}:{hashlib.sha256(' '.join(text.split()).encode()).hexdigest()}"
        tweet_id = str(10**18 + uuid.uuid4().int % (8 * 10**18))

        def insert_tweet(conn, post) -> None:
            conn.execute(
                "INSERT INTO x_tweets (id, user_id, text, created_at) VALUES (?, ?, ?, ?)",
                (post.id, user_id, text, post.created_at),
            )

        outcome = await run_in_threadpool(
            lambda: store.publish(
                content_key, content_key,
                PostInput("social", campaign_id, item_id, "x_post", "", text, 0),
                post_id=tweet_id, replay_logged_as=("rejected", 403, "duplicate_content"),
                on_create=insert_tweet,
            )
        )
        if outcome.kind != "created":
            return _problem(403, "Forbidden", DUPLICATE_DETAIL)
        return JSONResponse(
            {"data": {"id": outcome.post.id, "text": text, "edit_history_tweet_ids": [outcome.post.id]}}, 201
        )

    @router.get("/2/users/me")
    def me(request: Request) -> JSONResponse:
        user_id = authorised(request)
        if user_id is None:
            return unauthorized()
        return JSONResponse({"data": {"id": user_id, "name": "Sandbox", "username": f"sandbox_{user_id[-6:]}"}})

    @router.get("/2/users/{user_id}/tweets")
    def user_tweets(
        user_id: str, request: Request, max_results: int = 10, pagination_token: str | None = None,
    ) -> JSONResponse:
        if authorised(request) is None:
            return unauthorized()
        if not 5 <= max_results <= 100:
            return _invalid("max_results must be between 5 and 100.")
        offset = 0
        if pagination_token:
            try:
                offset = int(pagination_token, 16)
            except ValueError:
                return _invalid("pagination_token is invalid.")
        fields = set((request.query_params.get("tweet.fields") or "").split(","))
        rows = store.query(
            "SELECT id, text, created_at FROM x_tweets WHERE user_id = ?"
            " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            (user_id, max_results + 1, offset),
        )
        page, more = rows[:max_results], len(rows) > max_results
        data = []
        for row in page:
            tweet: dict[str, Any] = {"id": row["id"], "text": row["text"], "edit_history_tweet_ids": [row["id"]]}
            if "created_at" in fields:
                tweet["created_at"] = _iso(float(row["created_at"]))  # type: ignore[arg-type]
            data.append(tweet)
        meta: dict[str, Any] = {"result_count": len(data)}
        if data:
            meta.update(newest_id=data[0]["id"], oldest_id=data[-1]["id"])
        if more:
            meta["next_token"] = format(offset + max_results, "x")
        body: dict[str, Any] = {"meta": meta}
        if data:
            body["data"] = data
        return JSONResponse(body)

    return router


FACE = ProviderFace(name="x", build=create_router, error=error_response)
