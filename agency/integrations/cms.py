"""WordPress REST API adapter: blog posts published on the tenant's own site.

``POST /wp-json/wp/v2/posts`` with ``{"title", "content", "status", "slug", "meta"}`` answers 201
with the post (``id``, ``link``, ``status``, ``slug``, ``title.rendered``...). Authentication is
an application password (core WordPress, HTTP Basic) or a bearer token from an OAuth/JWT plugin;
either way it comes from the :class:`~agency.integrations.http.CredentialSource`.

WordPress takes no idempotency key, so exactly-once is built from two things it does have:

* **A slug derived from our idempotency key** (``{title words}-{12 hex of sha256(key)}``). The
  key names one logical publish (``campaign:item:version``), so any post carrying that slug is
  this item. Post ``meta`` would be the natural tag, but WordPress silently drops meta keys a
  plugin has not registered, so the adapter cannot rely on it (it sends the key there anyway,
  for sites that register ``agency_idempotency_key``).
* **Draft first, then publish by id.** A create that times out may still be applied later (the
  server got it; only the answer was lost). Were it a published post, that late arrival would be
  a second visible post nobody ever cleans up. So the adapter creates a *draft*, reads back every
  post with our slug, and publishes the lowest id; publishing an id is an update, which is
  idempotent. A late or concurrent create can then only leave an extra draft, invisible to
  readers, which the next publish of the item deletes. Concurrent publishes of one item agree:
  post ids only grow, and each caller reads after its own create, so every caller sees the
  first draft and picks it.

Drafts keep the slug as given; WordPress makes a slug unique (``-2``, ``-3``...) only when a
post is published and another post already has it, so the lookup asks for the suffixed forms
too. Every request here is therefore retry-safe, and they are sent as such.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from typing import Any

from agency.integrations.errors import ProviderError, ProviderUnavailable
from agency.integrations.http import CredentialSource, ProviderAdapter, ProviderHttp, json_object
from agency.integrations.reliability import RetryPolicy
from agency.integrations.social import SANDBOX_CAMPAIGN_HEADER, SANDBOX_ITEM_HEADER, PublishedPost

PROVIDER = "wordpress"
POSTS = "/wp-json/wp/v2/posts"
META_KEY = "agency_idempotency_key"
# Statuses a post of ours can be in that still hold its slug (trash is the user's decision).
_HOLDING_STATUSES = "publish,future,draft,pending,private"
# How many of WordPress's "-N" suffixes of our slug a lookup asks for.
_SUFFIXES = 4
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class BlogPost:
    title: str
    body: str  # plain text; paragraphs separated by blank lines
    idempotency_key: str
    campaign_id: str = ""
    item_id: str = ""


def slug_for(title: str, idempotency_key: str) -> str:
    """Readable and unique per key: up to 60 characters of title words, then 12 hex of the key."""
    words = _NOT_SLUG.sub("-", title.lower()).strip("-")[:60].rstrip("-")
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:12]
    return f"{words}-{digest}" if words else f"post-{digest}"


def html_paragraphs(text: str) -> str:
    """Plain text as WordPress post content: escaped, one ``<p>`` per paragraph."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "\n\n".join(f"<p>{html.escape(p).replace(chr(10), '<br />')}</p>" for p in paragraphs)


class WordPressPublisher(ProviderAdapter):
    """Publishes blog posts to one WordPress site (``base_url`` is the site's root URL)."""

    def __init__(
        self,
        base_url: str,
        credentials: CredentialSource,
        *,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        correlate: bool = False,
    ) -> None:
        self._http = ProviderHttp(PROVIDER, base_url, credentials=credentials, timeout_s=timeout_s, retry=retry)
        self._correlate = correlate

    def _headers(self, post: BlogPost) -> dict[str, str]:
        # Sandbox only: the real API has no field for our campaign and item.
        if not self._correlate:
            return {}
        return {SANDBOX_CAMPAIGN_HEADER: post.campaign_id, SANDBOX_ITEM_HEADER: post.item_id}

    async def publish(self, post: BlogPost) -> PublishedPost:
        slug = slug_for(post.title, post.idempotency_key)
        ours = await self.posts_with_slug(slug)
        published = [p for p in ours if p["status"] != "draft"]
        if published:
            await self._delete_drafts(ours, keep=None)
            return _published(published[0], duplicate=True)
        if not ours:
            # A duplicate draft is harmless (see the module docstring), so retrying is too.
            await self._http.request(
                "POST", POSTS, retry_safe=True, headers=self._headers(post),
                json={"title": post.title, "content": html_paragraphs(post.body), "status": "draft",
                      "slug": slug, "meta": {META_KEY: post.idempotency_key}},
            )
            ours = await self.posts_with_slug(slug)
            published = [p for p in ours if p["status"] != "draft"]
            if published:  # another attempt published the first draft meanwhile
                await self._delete_drafts(ours, keep=None)
                return _published(published[0], duplicate=True)
            if not ours:
                raise ProviderUnavailable(PROVIDER, f"the draft {slug!r} was created but is not listed yet")
        first = ours[0]
        # Extra drafts go before publishing: WordPress would otherwise suffix the slug.
        await self._delete_drafts(ours, keep=first["id"])
        response = await self._http.request(
            "POST", f"{POSTS}/{first['id']}", retry_safe=True, headers=self._headers(post),
            json={"status": "publish"},
        )
        return _published(json_object(PROVIDER, response), duplicate=False)

    async def posts_with_slug(self, slug: str) -> list[dict[str, Any]]:
        """Posts (any status but trash) with ``slug`` or a suffixed form of it, lowest id first."""
        slugs = [slug, *(f"{slug}-{n}" for n in range(2, 2 + _SUFFIXES))]
        response = await self._http.request("GET", POSTS, params={
            "slug": ",".join(slugs), "status": _HOLDING_STATUSES, "context": "edit",
            "per_page": 100, "orderby": "id", "order": "asc",
        })
        try:
            rows = response.json()
        except ValueError:
            rows = None
        if not isinstance(rows, list):
            raise ProviderUnavailable(PROVIDER, f"post lookup reply is not a list (HTTP {response.status_code})")
        posts = [r for r in rows if isinstance(r, dict) and "id" in r and r.get("slug") in slugs]
        return sorted(posts, key=lambda r: int(r["id"]))

    async def _delete_drafts(self, posts: list[dict[str, Any]], keep: object) -> None:
        for extra in posts:
            if extra["status"] == "draft" and extra["id"] != keep:
                try:
                    await self._http.request("DELETE", f"{POSTS}/{extra['id']}", params={"force": "true"})
                except ProviderError:
                    pass  # an invisible leftover; the next publish of this item tries again


def _published(post: dict[str, Any], *, duplicate: bool) -> PublishedPost:
    if not post.get("id"):
        raise ProviderUnavailable(PROVIDER, "post reply has no id")
    return PublishedPost(str(post["id"]), str(post.get("link", "")), duplicate=duplicate)
