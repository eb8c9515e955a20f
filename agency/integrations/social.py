"""Social network adapters: LinkedIn Posts API and X API v2.

Neither network takes an idempotency key, so a retried publish (a timeout after the post was
created, a reply lost after commit, an activity retry after a worker crash) could post twice.
Both refuse identical content from the same author, though, and that refusal is what makes a
retry safe here:

* LinkedIn answers 422 ``DUPLICATE_POST`` whose message names the existing post
  (``Content is a duplicate of urn:li:share:...``); without the urn in the message the adapter
  finds the post among the author's recent posts.
* X answers 403 "You are not allowed to create a Tweet with duplicate content." without the
  id; the adapter finds the tweet among the user's recent tweets (``GET /2/users/{id}/tweets``).

Either way the publish returns the existing post with ``duplicate=True``. Because a retry can
only end in "created" or "that post already exists", the create POST is marked retry-safe for
the in-call retries of :class:`~agency.integrations.http.ProviderHttp` too.

Limits of this: duplicate detection covers recent posts only (X and LinkedIn do not document
the window; it is hours to days), far longer than any retry here; and identical copy published
by an earlier campaign is reported as that earlier post, which is what the network shows anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

import httpx

from agency.integrations.http import CredentialSource, ProviderAdapter, ProviderHttp, json_object
from agency.integrations.errors import ProviderError, ProviderRejected, ProviderUnavailable
from agency.integrations.reliability import RetryPolicy

# Sent only to the sandbox's faces (``correlate=True``): the real APIs have no field for our
# campaign and item, and the sandbox needs them to list posts and deliveries per campaign.
SANDBOX_CAMPAIGN_HEADER = "X-Sandbox-Campaign-Id"
SANDBOX_ITEM_HEADER = "X-Sandbox-Item-Id"

# LinkedIn's Marketing API versions are YYYYMM and each is served for about a year.
LINKEDIN_VERSION = "202510"


@dataclass(frozen=True)
class SocialPost:
    text: str
    # Our key for this publish (campaign:item:version); networks without keys use it for logs.
    idempotency_key: str
    campaign_id: str = ""
    item_id: str = ""


@dataclass(frozen=True)
class PublishedPost:
    id: str  # the network's id (tweet id, LinkedIn share urn)
    url: str
    duplicate: bool  # the network already had this post; nothing new was published


class SocialPublisher(Protocol):
    async def publish(self, post: SocialPost) -> PublishedPost: ...

    async def aclose(self) -> None: ...


class DuplicateContent(ProviderRejected):
    """The network refused the post as a copy of one it already has (``existing_id`` if named)."""

    def __init__(self, provider: str, status_code: int, message: str, body: object, existing_id: str | None) -> None:
        super().__init__(provider, status_code, "duplicate_content", message, body)
        self.existing_id = existing_id


def correlation_headers(post: SocialPost, correlate: bool) -> dict[str, str]:
    if not correlate:
        return {}
    return {SANDBOX_CAMPAIGN_HEADER: post.campaign_id, SANDBOX_ITEM_HEADER: post.item_id}


def _json_or_none(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _same_text(a: str, b: str) -> bool:
    # Networks trim and collapse trailing whitespace; compare what a reader would see.
    return " ".join(a.split()) == " ".join(b.split())


# ---- X ------------------------------------------------------------------------------------
_X_DUPLICATE = "duplicate content"


def _x_classify(response: httpx.Response) -> ProviderError | None:
    if response.status_code != 403:
        return None
    body = _json_or_none(response)
    detail = str(body.get("detail", "")) if isinstance(body, dict) else response.text
    if _X_DUPLICATE in detail.lower():
        return DuplicateContent("x", 403, detail, body, existing_id=None)
    return None


def _x_error_reader(response: httpx.Response) -> tuple[str, str]:
    body = _json_or_none(response)
    if isinstance(body, dict):
        errors = body.get("errors")
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        code = body.get("title") or first.get("title") or f"http_{response.status_code}"
        message = body.get("detail") or first.get("message") or ""
        return (str(code), str(message)[:500])
    return (f"http_{response.status_code}", response.text[:300])


def _x_tweet_text(tweet: dict) -> str:
    """The text as we sent it: X shortens links to t.co, ``entities.urls`` has the originals."""
    text = str(tweet.get("text", ""))
    urls = (tweet.get("entities") or {}).get("urls") or []
    for url in urls:
        if isinstance(url, dict) and url.get("url") and url.get("expanded_url"):
            text = text.replace(str(url["url"]), str(url["expanded_url"]))
    return text


class XPublisher(ProviderAdapter):
    """Posts through X API v2 ``POST /2/tweets`` for the user the credential belongs to."""

    def __init__(
        self,
        base_url: str,
        credentials: CredentialSource,
        *,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        correlate: bool = False,
        lookup_pages: int = 3,
    ) -> None:
        self._http = ProviderHttp(
            "x", base_url, credentials=credentials, timeout_s=timeout_s, retry=retry,
            error_reader=_x_error_reader, classify=_x_classify,
        )
        self._correlate = correlate
        self._lookup_pages = lookup_pages
        self._user_id: str | None = None

    async def publish(self, post: SocialPost) -> PublishedPost:
        try:
            response = await self._http.request(
                "POST", "/2/tweets", json={"text": post.text}, retry_safe=True,
                headers=correlation_headers(post, self._correlate),
            )
        except DuplicateContent:
            tweet_id = await self._find_recent(post.text)
            if tweet_id is None:
                # X said the tweet exists but the timeline does not show it (yet): a later
                # attempt can find it; posting again would only be refused again.
                raise ProviderUnavailable(
                    "x", "X refused the tweet as a duplicate, but it is not among the user's recent tweets",
                    retry_after_s=5.0,
                ) from None
            return PublishedPost(tweet_id, _x_url(tweet_id), duplicate=True)
        data = json_object("x", response).get("data")
        if not isinstance(data, dict) or not data.get("id"):
            raise ProviderUnavailable("x", f"tweet reply has no data.id (HTTP {response.status_code})")
        return PublishedPost(str(data["id"]), _x_url(str(data["id"])), duplicate=False)

    async def user_id(self) -> str:
        if self._user_id is None:
            data = json_object("x", await self._http.request("GET", "/2/users/me")).get("data")
            if not isinstance(data, dict) or not data.get("id"):
                raise ProviderUnavailable("x", "users/me reply has no data.id")
            self._user_id = str(data["id"])
        return self._user_id

    async def _find_recent(self, text: str) -> str | None:
        """The id of the user's recent tweet with this text, newest pages first."""
        user_id = await self.user_id()
        params: dict[str, str | int] = {"max_results": 100, "tweet.fields": "created_at,entities"}
        for _ in range(self._lookup_pages):
            page = json_object("x", await self._http.request("GET", f"/2/users/{quote(user_id, safe='')}/tweets", params=params))
            for tweet in page.get("data") or []:
                if isinstance(tweet, dict) and _same_text(_x_tweet_text(tweet), text):
                    return str(tweet["id"])
            next_token = (page.get("meta") or {}).get("next_token")
            if not next_token:
                return None
            params["pagination_token"] = str(next_token)
        return None


def _x_url(tweet_id: str) -> str:
    return f"https://x.com/i/web/status/{tweet_id}"


# ---- LinkedIn -----------------------------------------------------------------------------
_LINKEDIN_URN = re.compile(r"urn:li:(?:share|ugcPost):\d+")
# Characters LinkedIn's "little text" format (the ``commentary`` field) treats as markup; left
# unescaped they truncate the post or make the request fail.
_LITTLE_TEXT_RESERVED = re.compile(r"([\\|{}@\[\]()<>#*_~])")
_LITTLE_TEXT_ESCAPED = re.compile(r"\\([\\|{}@\[\]()<>#*_~])")


def little_text_escape(text: str) -> str:
    return _LITTLE_TEXT_RESERVED.sub(r"\\\1", text)


def little_text_unescape(text: str) -> str:
    return _LITTLE_TEXT_ESCAPED.sub(r"\1", text)


def _linkedin_classify(response: httpx.Response) -> ProviderError | None:
    if response.status_code != 422:
        return None
    body = _json_or_none(response)
    if not isinstance(body, dict):
        return None
    message = str(body.get("message", ""))
    inputs = ((body.get("errorDetails") or {}).get("inputErrors")) or []
    codes = {str(e.get("code")) for e in inputs if isinstance(e, dict)}
    if "DUPLICATE_POST" in codes or "duplicate" in message.lower():
        match = _LINKEDIN_URN.search(message)
        return DuplicateContent("linkedin", 422, message, body, existing_id=match.group(0) if match else None)
    return None


def _linkedin_error_reader(response: httpx.Response) -> tuple[str, str]:
    body = _json_or_none(response)
    if isinstance(body, dict):
        code = body.get("code") or body.get("serviceErrorCode") or f"http_{response.status_code}"
        return (str(code), str(body.get("message", ""))[:500])
    return (f"http_{response.status_code}", response.text[:300])


class LinkedInPublisher(ProviderAdapter):
    """Posts through LinkedIn's versioned Posts API (``POST /rest/posts``) as ``author``."""

    def __init__(
        self,
        base_url: str,
        credentials: CredentialSource,
        *,
        author: str,  # urn:li:organization:{id} or urn:li:person:{id}
        api_version: str = LINKEDIN_VERSION,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        correlate: bool = False,
        lookup_count: int = 50,
    ) -> None:
        self._http = ProviderHttp(
            "linkedin", base_url, credentials=credentials, timeout_s=timeout_s, retry=retry,
            error_reader=_linkedin_error_reader, classify=_linkedin_classify,
            headers={"LinkedIn-Version": api_version, "X-Restli-Protocol-Version": "2.0.0"},
        )
        self._author = author
        self._correlate = correlate
        self._lookup_count = lookup_count

    async def publish(self, post: SocialPost) -> PublishedPost:
        commentary = little_text_escape(post.text)
        body = {
            "author": self._author,
            "commentary": commentary,
            "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }
        try:
            response = await self._http.request(
                "POST", "/rest/posts", json=body, retry_safe=True,
                headers=correlation_headers(post, self._correlate),
            )
        except DuplicateContent as duplicate:
            urn = duplicate.existing_id or await self._find_recent(commentary)
            if urn is None:
                raise ProviderUnavailable(
                    "linkedin", "LinkedIn refused the post as a duplicate without naming it, and it is not among the author's recent posts",
                    retry_after_s=5.0,
                ) from None
            return PublishedPost(urn, _linkedin_url(urn), duplicate=True)
        urn = response.headers.get("x-restli-id") or response.headers.get("x-linkedin-id")
        if not urn:
            raise ProviderUnavailable("linkedin", f"post created (HTTP {response.status_code}) without an x-restli-id header")
        return PublishedPost(urn, _linkedin_url(urn), duplicate=False)

    async def _find_recent(self, commentary: str) -> str | None:
        # Rest.li 2.0 wants URNs in query strings fully percent-encoded (":" included).
        query = f"q=author&author={quote(self._author, safe='')}&count={self._lookup_count}&sortBy=CREATED"
        page = json_object("linkedin", await self._http.request("GET", f"/rest/posts?{query}"))
        for element in page.get("elements") or []:
            if isinstance(element, dict) and _same_text(str(element.get("commentary", "")), commentary):
                return str(element["id"])
        return None


def _linkedin_url(urn: str) -> str:
    return f"https://www.linkedin.com/feed/update/{urn}/"
