"""Competitive watch activities.

integrations queue: fetching a competitor's feed / sitemap / page over HTTP, politely: robots.txt
first (a disallowed URL is never requested, redirects included), conditional requests from the
stored validators (a 304 costs no parsing), timeouts, a size cap and a User-Agent naming us.
inference queue: embedding item texts with the Triton embedder.
orchestration queue: sources, items (new / changed / unchanged) and topics in PostgreSQL.

A competitor's site failing is an outcome of the poll (status "error"), not an activity failure:
the other sources are still polled and the next poll tries again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from datetime import datetime, timedelta
from urllib.parse import urljoin, urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import business_error
from agency.competitive import robots as robots_txt
from agency.competitive.contracts import (
    CompetitiveActivity,
    EmbedBatchRequest,
    FetchResult,
    FetchStatus,
    ItemText,
    SaveEmbeddings,
    SourceRef,
    StoreRequest,
    StoreResult,
    TopicsRequest,
    TopicsResult,
)
from agency.competitive.feeds import MAX_ITEMS, FeedError, parse_document
from agency.competitive.topics import TopicItem, build_topics, proposals, summary
from agency.db.competitive import CompetitiveRepository
from agency.inference import InferenceUnavailable, TritonInference

USER_AGENT = "AgencyCompetitiveWatch/1.0 (+https://github.com/agency/agency; public feeds only)"
MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 5
MAX_CHILD_SITEMAPS = 10
EMBED_TEXT_CHARS = 1000  # the embedder reads ~256 tokens; more only costs payload


class FetchRefused(Exception):
    """Not fetched on purpose: robots.txt forbids it, or the address is private."""


class _Disallowed(FetchRefused):
    pass


class CompetitiveFetchActivities:
    def __init__(
        self,
        http: httpx.AsyncClient | None = None,
        *,
        user_agent: str = USER_AGENT,
        timeout_s: float = 20.0,
        allow_private_networks: bool = False,
    ) -> None:
        self._user_agent = user_agent
        # Redirects are followed by hand: each hop must pass robots.txt and the address check.
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), follow_redirects=False)
        # Tenants type these URLs: without this check a worker could be pointed at internal services.
        self._allow_private = allow_private_networks

    async def close(self) -> None:
        await self._http.aclose()

    @activity.defn(name=CompetitiveActivity.FETCH_SOURCE)
    async def fetch_competitor_source(self, source: SourceRef) -> FetchResult:
        robots: dict[str, robots_txt.Robots] = {}
        try:
            response, body = await self._get(source.url, robots, conditional=source)
        except _Disallowed as err:
            return FetchResult(source.source_id, FetchStatus.DISALLOWED, error=str(err))
        except (FetchRefused, httpx.HTTPError, httpx.InvalidURL, ValueError) as err:
            return FetchResult(source.source_id, FetchStatus.ERROR, error=f"{type(err).__name__}: {err}")
        if response.status_code == 304:
            # Nothing new: the stored validators stay, the (empty) body is not parsed.
            return FetchResult(source.source_id, FetchStatus.NOT_MODIFIED, http_status=304,
                               etag=source.etag, last_modified=source.last_modified)
        if response.status_code >= 400:
            return FetchResult(source.source_id, FetchStatus.ERROR, http_status=response.status_code,
                               error=f"HTTP {response.status_code}")
        try:
            doc = parse_document(body, response.headers.get("content-type", ""), str(response.url))
        except FeedError as err:
            return FetchResult(source.source_id, FetchStatus.ERROR, http_status=response.status_code, error=str(err))
        items, errors = list(doc.items), []
        for child in doc.sitemaps[:MAX_CHILD_SITEMAPS]:
            if len(items) >= MAX_ITEMS:
                break
            try:
                child_response, child_body = await self._get(child, robots)
                if child_response.status_code >= 400:
                    raise FetchRefused(f"HTTP {child_response.status_code}")
                items.extend(parse_document(child_body, child_response.headers.get("content-type", ""), child).items)
            except (FetchRefused, httpx.HTTPError, httpx.InvalidURL, FeedError, ValueError) as err:
                errors.append(f"{child}: {type(err).__name__}: {err}")
        return FetchResult(
            source.source_id, FetchStatus.OK, http_status=response.status_code,
            etag=response.headers.get("etag", ""), last_modified=response.headers.get("last-modified", ""),
            items=items[:MAX_ITEMS], error="; ".join(errors)[:1000],
        )

    async def _get(
        self, url: str, robots: dict[str, robots_txt.Robots], *, conditional: SourceRef | None = None
    ) -> tuple[httpx.Response, bytes]:
        headers = {"User-Agent": self._user_agent, "Accept": "application/rss+xml, application/atom+xml, "
                   "application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.8, */*;q=0.5"}
        if conditional is not None:
            if conditional.etag:
                headers["If-None-Match"] = conditional.etag
            if conditional.last_modified:
                headers["If-Modified-Since"] = conditional.last_modified
        for _ in range(MAX_REDIRECTS + 1):
            await self._check_address(url)
            rules = await self._robots(url, robots)
            if not rules.allows(url):
                raise _Disallowed(f"robots.txt disallows {url}")
            response, body = await self._download(url, headers)
            if response.is_redirect and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                continue
            return response, body
        raise FetchRefused(f"more than {MAX_REDIRECTS} redirects")

    async def _download(self, url: str, headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
        async with self._http.stream("GET", url, headers=headers) as response:
            if response.status_code == 304 or response.is_redirect:
                return response, b""
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise FetchRefused(f"response larger than {MAX_BODY_BYTES} bytes")
            return response, bytes(body)

    async def _robots(self, url: str, cache: dict[str, robots_txt.Robots]) -> robots_txt.Robots:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin in cache:
            return cache[origin]
        robots_url = f"{origin}/robots.txt"
        try:
            response = None
            for _ in range(MAX_REDIRECTS + 1):
                response, body = await self._download(robots_url, {"User-Agent": self._user_agent})
                if not (response.is_redirect and "location" in response.headers):
                    break
                robots_url = urljoin(robots_url, response.headers["location"])
                await self._check_address(robots_url)
            assert response is not None
            if 200 <= response.status_code < 300:
                rules = robots_txt.parse(body.decode("utf-8", errors="replace"), self._user_agent)
            elif 400 <= response.status_code < 500:
                rules = robots_txt.allow_all()
            else:
                rules = robots_txt.disallow_all()
        except (httpx.HTTPError, FetchRefused):
            rules = robots_txt.disallow_all()
        cache[origin] = rules
        return rules

    async def _check_address(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchRefused(f"not an http(s) URL: {url}")
        if self._allow_private:
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
        except OSError as err:
            raise FetchRefused(f"cannot resolve {parts.hostname}: {err}") from err
        for info in infos:
            address = ipaddress.ip_address(info[4][0])
            if not address.is_global:
                raise FetchRefused(f"{parts.hostname} resolves to a non-public address")

    def all(self) -> list:
        return [self.fetch_competitor_source]


class CompetitiveEmbedActivities:
    def __init__(self, inference: TritonInference) -> None:
        self._inference = inference

    @activity.defn(name=CompetitiveActivity.EMBED_TEXTS)
    async def embed_competitor_texts(self, texts: list[str]) -> list[list[float]]:
        if not texts or any(not t.strip() for t in texts):
            raise business_error(ValueError("every text to embed must be non-empty"))
        try:
            vectors = await self._inference.embed(texts)
        except InferenceUnavailable as err:
            raise ApplicationError(f"model server unavailable: {err}", type="InferenceUnavailable") from err
        # 6 decimals: cosine similarities unchanged to ~1e-6, the payload about half as large.
        return [[round(x, 6) for x in v] for v in vectors]

    def all(self) -> list:
        return [self.embed_competitor_texts]


def embed_text(title: str, text: str) -> str:
    return f"{title}. {text}"[:EMBED_TEXT_CHARS].strip(". ") or title or text


class CompetitiveStoreActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def _tenant(self, repo: CompetitiveRepository, tenant: str):
        tenant_id = await repo.tenant_id(tenant)
        if tenant_id is None:
            raise business_error(LookupError(f"unknown tenant {tenant!r}"))
        return tenant_id

    @activity.defn(name=CompetitiveActivity.LOAD_SOURCES)
    async def load_competitor_sources(self, tenant: str) -> list[SourceRef]:
        async with self._sessions() as session:
            repo = CompetitiveRepository(session)
            sources = await repo.sources(await self._tenant(repo, tenant))
        return [SourceRef(s.id, s.url, s.kind, s.etag, s.last_modified) for s in sources]

    @activity.defn(name=CompetitiveActivity.STORE_FETCH)
    async def store_competitor_fetch(self, req: StoreRequest) -> StoreResult:
        polled_at = datetime.fromisoformat(req.polled_at)
        async with self._sessions() as session, session.begin():
            repo = CompetitiveRepository(session)
            tenant_id = await self._tenant(repo, req.tenant)
            if not await repo.record_poll(tenant_id, req.result, polled_at):
                # The source was removed while the poll ran: its items must not come back.
                return StoreResult(source_id=req.result.source_id, status=req.result.status)
            if req.result.status != FetchStatus.OK:
                return StoreResult(source_id=req.result.source_id, status=req.result.status)
            return await repo.store_items(tenant_id, req.result, polled_at)

    @activity.defn(name=CompetitiveActivity.NEXT_UNEMBEDDED)
    async def next_unembedded_competitor_items(self, req: EmbedBatchRequest) -> list[ItemText]:
        async with self._sessions() as session:
            repo = CompetitiveRepository(session)
            items = await repo.unembedded(await self._tenant(repo, req.tenant), max(1, req.limit))
        return [ItemText(i.id, embed_text(i.title, i.text) or i.url) for i in items]

    @activity.defn(name=CompetitiveActivity.SAVE_EMBEDDINGS)
    async def save_competitor_embeddings(self, req: SaveEmbeddings) -> int:
        if len(req.item_ids) != len(req.vectors):
            raise business_error(ValueError(f"{len(req.item_ids)} items but {len(req.vectors)} vectors"))
        async with self._sessions() as session, session.begin():
            return await CompetitiveRepository(session).save_embeddings(req.item_ids, req.vectors)

    @activity.defn(name=CompetitiveActivity.UPDATE_TOPICS)
    async def update_competitor_topics(self, req: TopicsRequest) -> TopicsResult:
        now = datetime.fromisoformat(req.now)
        async with self._sessions() as session, session.begin():
            repo = CompetitiveRepository(session)
            tenant_id = await self._tenant(repo, req.tenant)
            rows = await repo.embedded_items(tenant_id, now - timedelta(days=2 * req.window_days))
            items = [
                TopicItem(key=f"i{r.id}", title=r.title, text=r.text, when=r.published_at or r.first_seen_at,
                          vector=list(r.embedding or []))
                for r in rows
            ]
            topics = build_topics(items, now, window_days=req.window_days, threshold=req.threshold)
            proposed = proposals(topics, req.window_days)
            await repo.replace_topics(
                tenant_id, topics, proposed, window_days=req.window_days, computed_at=now,
                item_ids={f"i{r.id}": r.id for r in rows},
            )
        return TopicsResult(topics=[summary(t) for t in topics], proposals=proposed)

    def all(self) -> list:
        return [
            self.load_competitor_sources,
            self.store_competitor_fetch,
            self.next_unembedded_competitor_items,
            self.save_competitor_embeddings,
            self.update_competitor_topics,
        ]
