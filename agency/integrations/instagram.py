"""Instagram Graph API content publishing: captions go out as image posts.

Two steps, as the API requires: ``POST /{ig-user-id}/media`` (``image_url`` + ``caption``) makes a
container; ``POST /{ig-user-id}/media_publish`` (``creation_id``) publishes it and answers the
media id. Between them the container is processed (``status_code`` IN_PROGRESS -> FINISHED).

Instagram takes no idempotency key and does not refuse duplicate captions. What it does
guarantee is that a container is published at most once (afterwards its ``status_code`` is
PUBLISHED and another ``media_publish`` of it is refused). So, per publish:

* the account's recent media are searched for this caption first: an earlier attempt that got
  that far (its answer lost, a worker crash) is returned as the existing post;
* the container step is retried freely: an unpublished container is invisible and expires
  after 24 hours;
* ``media_publish`` of one container is retried in-call, so a timed-out publish whose request
  is applied late cannot add a second post: either the retry publishes the container and the late
  request is refused, or the other way round. A refusal is resolved by reading the container:
  PUBLISHED means it is ours, and the media id is recovered from the account's media list.

Not covered: two *concurrent* attempts for one item (each makes its own container). Temporal runs
one attempt of an activity at a time; only an attempt abandoned while its request is still in
flight could overlap the next, which the first step then usually catches.

Errors come as ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``. Rate
limits (codes 4, 17, 32, 613) arrive with HTTP 400/403 and temporary errors (1, 2, or
``is_transient``) with 500: all are :class:`ProviderUnavailable`. An invalid or expired token is
code 190 with HTTP 400: :class:`ProviderAuthFailed`, so the credential is reloaded once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx

from agency.channels import parse_retry_after
from agency.integrations.errors import (
    ProviderAuthFailed,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
)
from agency.integrations.http import CredentialSource, ProviderAdapter, ProviderHttp, json_object
from agency.integrations.reliability import RetryPolicy
from agency.integrations.social import PublishedPost, SocialPost, correlation_headers

PROVIDER = "instagram"
GRAPH_VERSION = "v21.0"
MAX_CAPTION = 2_200
# Application, user, page and custom rate limits; 1/2 are "unknown"/"service" temporary errors.
_RATE_LIMIT_CODES = frozenset({4, 17, 32, 613})
_TEMPORARY_CODES = frozenset({1, 2})
# Invalid/expired token, session, permission.
_AUTH_CODES = frozenset({102, 190, 10, 200})


def _graph_error(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def graph_error_reader(response: httpx.Response) -> tuple[str, str]:
    error = _graph_error(response)
    if error is None:
        return (f"http_{response.status_code}", response.text[:300])
    code = str(error.get("code", f"http_{response.status_code}"))
    if error.get("error_subcode"):
        code = f"{code}.{error['error_subcode']}"
    return (code, str(error.get("message", ""))[:500])


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def graph_classify(response: httpx.Response) -> ProviderError | None:
    """Graph errors whose meaning the HTTP status does not carry (throttling as 400/403...)."""
    if response.status_code < 400:
        return None
    error = _graph_error(response)
    if error is None:
        return None
    code = _as_int(error.get("code"))
    label, message = graph_error_reader(response)
    if code in _RATE_LIMIT_CODES or code in _TEMPORARY_CODES or error.get("is_transient") is True:
        return ProviderUnavailable(
            PROVIDER, f"HTTP {response.status_code} {label}: {message}", status_code=response.status_code,
            retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
        )
    if code in _AUTH_CODES:
        return ProviderAuthFailed(PROVIDER, response.status_code, label, message, error)
    return None


class InstagramPublisher(ProviderAdapter):
    """Publishes captions as image posts of one Instagram professional account."""

    def __init__(
        self,
        base_url: str,
        credentials: CredentialSource,
        *,
        ig_user_id: str,
        image_url: str | None,
        api_version: str = GRAPH_VERSION,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        correlate: bool = False,
        lookup_pages: int = 2,
        container_wait_s: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not str(ig_user_id).isdigit():
            raise ValueError(f"an Instagram user id is numeric, not {ig_user_id!r}")
        self._http = ProviderHttp(
            PROVIDER, base_url, credentials=credentials, timeout_s=timeout_s, retry=retry,
            error_reader=graph_error_reader, classify=graph_classify,
        )
        self._user = str(ig_user_id)
        self._image_url = image_url
        self._version = api_version
        self._correlate = correlate
        self._lookup_pages = lookup_pages
        self._container_wait_s = container_wait_s
        self._sleep = sleep

    def _path(self, node: str, edge: str = "") -> str:
        return f"/{self._version}/{quote(node, safe='')}" + (f"/{edge}" if edge else "")

    async def publish(self, post: SocialPost) -> PublishedPost:
        if not self._image_url:
            raise ProviderRejected(PROVIDER, 422, "image_required",
                                   "Instagram posts need an image: set image_url on the instagram connection")
        if len(post.text) > MAX_CAPTION:
            raise ProviderRejected(PROVIDER, 422, "caption_too_long", f"captions are at most {MAX_CAPTION} characters")
        existing = await self.find_recent(post.text)
        if existing is not None:
            return PublishedPost(existing["id"], str(existing.get("permalink", "")), duplicate=True)
        headers = correlation_headers(post, self._correlate)
        created = json_object(PROVIDER, await self._http.request(
            "POST", self._path(self._user, "media"), retry_safe=True, headers=headers,
            data={"image_url": self._image_url, "caption": post.text},
        ))
        container = str(created.get("id") or "")
        if not container:
            raise ProviderUnavailable(PROVIDER, "container reply has no id")
        await self._wait_until_ready(container)
        try:
            published = json_object(PROVIDER, await self._http.request(
                "POST", self._path(self._user, "media_publish"), retry_safe=True, headers=headers,
                data={"creation_id": container},
            ))
        except ProviderRejected as refused:
            if isinstance(refused, ProviderAuthFailed):
                raise
            # Refused: most likely because an earlier try of this very request published it.
            status = await self._container_status(container)
            if status != "PUBLISHED":
                raise
            media = await self.find_recent(post.text)
            if media is None:
                raise ProviderUnavailable(
                    PROVIDER, f"container {container} is published but its media is not listed yet", retry_after_s=5.0,
                ) from None
            return PublishedPost(media["id"], str(media.get("permalink", "")), duplicate=True)
        media_id = str(published.get("id") or "")
        if not media_id:
            raise ProviderUnavailable(PROVIDER, "media_publish reply has no id")
        return PublishedPost(media_id, await self._permalink(media_id), duplicate=False)

    async def _container_status(self, container: str) -> str:
        reply = json_object(PROVIDER, await self._http.request(
            "GET", self._path(container), params={"fields": "status_code,id"}))
        return str(reply.get("status_code", ""))

    async def _wait_until_ready(self, container: str) -> None:
        """Poll the container until FINISHED (images take seconds); ERROR/EXPIRED is final."""
        waited, delay = 0.0, 0.5
        while True:
            status = await self._container_status(container)
            if status in ("FINISHED", "PUBLISHED"):
                return
            if status in ("ERROR", "EXPIRED"):
                raise ProviderRejected(PROVIDER, 422, f"container_{status.lower()}",
                                       f"container {container} is {status}; the image could not be used")
            if waited >= self._container_wait_s:
                # A fresh attempt makes a new container; this one expires unpublished.
                raise ProviderUnavailable(PROVIDER, f"container {container} still {status or 'unknown'}", retry_after_s=5.0)
            await self._sleep(delay)
            waited += delay
            delay = min(delay * 2, 5.0)

    async def _permalink(self, media_id: str) -> str:
        try:
            reply = json_object(PROVIDER, await self._http.request(
                "GET", self._path(media_id), params={"fields": "permalink"}))
        except ProviderError:
            return ""  # the post exists; its link is a nicety
        return str(reply.get("permalink", ""))

    async def find_recent(self, caption: str) -> dict[str, Any] | None:
        """The account's recent media with this caption (newest pages first), or None."""
        wanted = " ".join(caption.split())
        params: dict[str, Any] = {"fields": "id,caption,permalink,timestamp", "limit": 50}
        for _ in range(self._lookup_pages):
            page = json_object(PROVIDER, await self._http.request("GET", self._path(self._user, "media"), params=params))
            for media in page.get("data") or []:
                if isinstance(media, dict) and " ".join(str(media.get("caption", "")).split()) == wanted:
                    return {**media, "id": str(media["id"])}
            after = ((page.get("paging") or {}).get("cursors") or {}).get("after")
            if not after or not (page.get("paging") or {}).get("next"):
                return None
            params["after"] = after
        return None
