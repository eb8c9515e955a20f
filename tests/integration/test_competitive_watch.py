"""The competitive watch for real: CompetitiveWatchWorkflow on the Temporal dev server, its activities
on PostgreSQL, fetching from a local competitor site (127.0.0.1) whose feeds change between polls.

The site answers conditional requests (ETag / Last-Modified -> 304), has a robots.txt with a
Disallow, and logs every request, so the test sees what was (and was not) fetched.
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Replayer, Worker

from api_flow import record_workflow_history

from activities.competitive import (
    CompetitiveEmbedActivities,
    CompetitiveFetchActivities,
    CompetitiveStoreActivities,
)
from agency.competitive.contracts import FetchStatus, SourceRef, WatchInput, WatchResult
from agency.competitive.topics import TopicItem, build_topics
from agency.contracts import TaskQueues
from agency.db.competitive import CompetitiveRepository
from agency.db.models_competitive import CompetitorItem, CompetitorSource
from agency.db.repository import CampaignRepository
from agency.inference import TritonInference
from workers.competitive_schedule import (
    competitive_watch_schedule_id,
    ensure_competitive_watch_schedule,
    remove_competitive_watch_schedule,
)
from workflows.competitive_watch import CompetitiveWatchWorkflow

pytestmark = pytest.mark.integration

ROBOTS = """# Peak Gear
User-agent: *
Disallow: /private/
Allow: /private-label/

Sitemap: /sitemap.xml
"""


def rss(items: list[tuple[str, str, str, str]]) -> str:
    entries = "".join(
        f"<item><title>{title}</title><link>/blog/{guid}</link><guid isPermaLink=\"false\">{guid}</guid>"
        f"<pubDate>{date}</pubDate><description>&lt;p&gt;{text}&lt;/p&gt;</description></item>"
        for guid, title, text, date in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Peak Gear blog</title>'
        f"<link>/blog</link><description>Gear advice</description>{entries}</channel></rss>"
    )


# Dates relative to the test run: the topics' windows are relative to the poll's time.
NOW = datetime.now(timezone.utc)


def _rfc822(days_ago: int) -> str:
    return format_datetime(NOW - timedelta(days=days_ago), usegmt=True)


def _iso(days_ago: int) -> str:
    return (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


RSS_V1 = [
    ("peak-1", "Trail running shoes for wet autumn", "Grip and drainage matter most on wet trails.",
     _rfc822(13)),
    ("peak-2", "Layering for winter hikes", "Base, mid and shell layers keep you dry.", _rfc822(11)),
    ("peak-3", "Choosing a camp stove", "Canister or liquid fuel: weight versus cold performance.",
     _rfc822(9)),
]
RSS_V2 = [
    ("peak-5", "Trail running shoes with carbon plates", "Are carbon plates worth it off road?",
     _rfc822(1)),
    ("peak-4", "Waterproof trail running shoes tested", "Six pairs through mud and rivers.",
     _rfc822(2)),
    # Same guid, corrected text: a changed item.
    RSS_V1[0][:2] + ("Grip, drainage and a rock plate matter most on wet trails.", RSS_V1[0][3]),
    RSS_V1[1],
    RSS_V1[2],
]

ATOM = f"""<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Summit</title>
<id>tag:summit.test,2026:feed</id><updated>{_iso(9)}</updated>
<entry><id>tag:summit.test,2026:1</id><title>Ultralight tents under one kilo</title>
<link href="/posts/ultralight-tents"/><updated>{_iso(10)}</updated><summary>Five shelters weighed.</summary></entry>
<entry><id>tag:summit.test,2026:2</id><title>Pitching ultralight tents in wind</title>
<link href="/posts/tents-in-wind"/><updated>{_iso(9)}</updated><summary>Guy lines and angles.</summary></entry>
</feed>"""

SITEMAP_INDEX = """<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>/sitemap-blog.xml</loc></sitemap><sitemap><loc>/private/sitemap-drafts.xml</loc></sitemap></sitemapindex>"""

SITEMAP_BLOG = f"""<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<url><loc>/guides/trail-running-shoes-sizing</loc><lastmod>{_iso(8)[:10]}</lastmod></url>
<url><loc>/guides/winter-camping-checklist</loc><lastmod>{_iso(7)[:10]}</lastmod></url></urlset>"""

PRICING = """<!DOCTYPE html><html><head><title>Peak Gear | Pricing</title></head><body><nav>Home</nav>
<main><h1>Membership</h1><p>Free returns on trail running shoes for members.</p></main><footer>(c)</footer></body></html>"""


@dataclass
class Site:
    """The competitor's site: documents by path, their versions, and every request it answered."""

    documents: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (content type, body)
    last_modified: dict[str, datetime] = field(default_factory=dict)
    etag_paths: set[str] = field(default_factory=set)  # these send an ETag; the others Last-Modified only
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def publish(self, path: str, content_type: str, body: str, *, modified: datetime, etag: bool = True) -> None:
        with self.lock:
            self.documents[path] = (content_type, body)
            self.last_modified[path] = modified
            if etag:
                self.etag_paths.add(path)

    def log(self, path: str | None = None) -> list[tuple[str, dict[str, str]]]:
        with self.lock:
            return [(p, h) for p, h in self.requests if path is None or p == path]


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            with site.lock:
                site.requests.append((path, {k.lower(): v for k, v in self.headers.items()}))
                doc = site.documents.get(path)
                modified = site.last_modified.get(path)
                with_etag = path in site.etag_paths
            if doc is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            content_type, body = doc
            etag = f'"{hashlib.sha256(body.encode()).hexdigest()[:16]}"'
            last_modified = format_datetime(modified, usegmt=True)
            if with_etag and self.headers.get("If-None-Match") == etag:
                return self._not_modified(etag, last_modified)
            since = self.headers.get("If-Modified-Since")
            if not with_etag and since == last_modified:
                return self._not_modified(None, last_modified)
            payload = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Last-Modified", last_modified)
            if with_etag:
                self.send_header("ETag", etag)
            self.end_headers()
            self.wfile.write(payload)

        def _not_modified(self, etag: str | None, last_modified: str) -> None:
            self.send_response(304)
            if etag:
                self.send_header("ETag", etag)
            self.send_header("Last-Modified", last_modified)
            self.end_headers()

        def log_message(self, *args) -> None:  # the request log above is the record
            pass

    return Handler


@pytest.fixture
def site() -> Iterator[Site]:
    site = Site()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        site.url = f"http://127.0.0.1:{server.server_address[1]}"
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class WordEmbedder:
    """Stands in for TritonInference.embed in the fetch / change-detection test: a deterministic
    hashed bag of words (unit vectors), so texts sharing words are close. The real embedder is
    exercised in test_real_embedder_groups_competitor_items_into_topics."""

    DIM = 64

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        out = []
        for text in texts:
            v = np.zeros(self.DIM)
            for word in re.findall(r"[a-z]{4,}", text.lower()):
                v[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.DIM] += 1.0
            out.append(list(v / (np.linalg.norm(v) or 1.0)))
        return out


def queues(tag: str) -> TaskQueues:
    return TaskQueues(orchestration=f"cw-orch-{tag}", inference=f"cw-inf-{tag}", integrations=f"cw-int-{tag}")


@asynccontextmanager
async def watch_workers(client: Client, sessions, embedder, q: TaskQueues):
    fetch = CompetitiveFetchActivities(allow_private_networks=True)  # the test site is on 127.0.0.1
    try:
        async with (
            Worker(client, task_queue=q.orchestration, workflows=[CompetitiveWatchWorkflow],
                   activities=CompetitiveStoreActivities(sessions).all()),
            Worker(client, task_queue=q.integrations, activities=fetch.all()),
            Worker(client, task_queue=q.inference, activities=CompetitiveEmbedActivities(embedder).all()),
        ):
            yield
    finally:
        await fetch.close()


async def poll(client: Client, tenant: str, q: TaskQueues, *, record_as: str = "") -> WatchResult:
    workflow_id = f"competitive-watch/{tenant}/{uuid.uuid4().hex[:8]}"
    result = await client.execute_workflow(
        CompetitiveWatchWorkflow.run, WatchInput(tenant=tenant, queues=q, max_concurrent_fetches=2),
        id=workflow_id, task_queue=q.orchestration, execution_timeout=timedelta(minutes=2),
    )
    # The run replays against the same code: the workflow is deterministic.
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    await Replayer(workflows=[CompetitiveWatchWorkflow]).replay_workflow(history)
    if record_as:  # with AGENCY_RECORD_HISTORIES=1, kept for tests/test_replay.py
        await record_workflow_history(client, workflow_id, record_as)
    return result


async def test_changed_feed_yields_exactly_the_new_items_honours_304_and_robots(temporal_env, db_engine, site: Site):
    sessions = async_sessionmaker(db_engine, expire_on_commit=False)
    tenant = f"watch-{uuid.uuid4().hex[:8]}"
    day1 = (NOW - timedelta(days=9)).replace(microsecond=0)
    site.publish("/robots.txt", "text/plain", ROBOTS, modified=day1, etag=False)
    site.publish("/feed.xml", "application/rss+xml", rss(RSS_V1), modified=day1)
    site.publish("/atom.xml", "application/atom+xml", ATOM, modified=day1)
    site.publish("/sitemap.xml", "application/xml", SITEMAP_INDEX, modified=day1)
    site.publish("/sitemap-blog.xml", "application/xml", SITEMAP_BLOG, modified=day1)
    site.publish("/private/sitemap-drafts.xml", "application/xml", SITEMAP_BLOG.replace("guides", "drafts"),
                 modified=day1)
    site.publish("/private/launch-plans.html", "text/html", PRICING, modified=day1)
    site.publish("/pricing", "text/html; charset=utf-8", PRICING, modified=day1, etag=False)
    urls = {
        "rss": f"{site.url}/feed.xml", "atom": f"{site.url}/atom.xml", "sitemap": f"{site.url}/sitemap.xml",
        "page": f"{site.url}/pricing", "private": f"{site.url}/private/launch-plans.html",
    }
    async with sessions() as session, session.begin():
        tenant_id = (await CampaignRepository(session).ensure_tenant(tenant)).id
        stored = await CompetitiveRepository(session).replace_sources(
            tenant_id,
            [(urls["rss"], "rss"), (urls["atom"], "atom"), (urls["sitemap"], "sitemap"), (urls["page"], "page"),
             (urls["private"], "page")],
            interval_s=3600, schedule_id="unused",
        )
    source_id = {kind: next(s.id for s in stored if s.url == url) for kind, url in urls.items()}
    embedder = WordEmbedder()
    q = queues(tenant)

    async with watch_workers(temporal_env.client, sessions, embedder, q):
        first = await poll(temporal_env.client, tenant, q)
        by_source = {r.source_id: r for r in first.sources}
        assert sorted(by_source[source_id["rss"]].new) == ["peak-1", "peak-2", "peak-3"]
        assert len(by_source[source_id["atom"]].new) == 2
        assert sorted(by_source[source_id["sitemap"]].new) == [
            f"{site.url}/guides/trail-running-shoes-sizing", f"{site.url}/guides/winter-camping-checklist"
        ]
        assert by_source[source_id["page"]].new == [urls["page"]]
        assert by_source[source_id["private"]].status == FetchStatus.DISALLOWED
        assert first.embedded == 3 + 2 + 2 + 1

        # The feed changes: two new posts, one corrected; nothing else on the site changes.
        site.publish("/feed.xml", "application/rss+xml", rss(RSS_V2), modified=day1 + timedelta(days=8))
        requests_before = len(site.log())
        second = await poll(temporal_env.client, tenant, q, record_as="competitive_watch_changed_feed")

    by_source = {r.source_id: r for r in second.sources}
    rss_result = by_source[source_id["rss"]]
    assert sorted(rss_result.new) == ["peak-4", "peak-5"]  # exactly the new items
    assert rss_result.changed == ["peak-1"]
    assert rss_result.unchanged == 2
    assert second.embedded == 3  # the two new items and the changed one, nothing else re-embedded
    assert embedder.calls[-1] and all("carbon" in t or "Waterproof" in t or "rock plate" in t for t in embedder.calls[-1])

    # 304: the server got the validators it sent, answered 304, and nothing was parsed or stored again.
    second_requests = site.log()[requests_before:]
    atom_request = next(h for p, h in second_requests if p == "/atom.xml")
    first_atom_etag = f'"{hashlib.sha256(ATOM.encode()).hexdigest()[:16]}"'
    assert atom_request["if-none-match"] == first_atom_etag
    page_request = next(h for p, h in second_requests if p == "/pricing")
    assert page_request["if-modified-since"] == format_datetime(day1, usegmt=True)
    assert "if-none-match" not in page_request  # that page never sent an ETag
    for kind in ("atom", "page", "sitemap"):
        result = by_source[source_id[kind]]
        assert (result.status, result.new, result.changed, result.unchanged) == (FetchStatus.NOT_MODIFIED, [], [], 0)
    # Not even the sitemap index's children are requested again after its 304.
    assert not [p for p, _ in second_requests if p == "/sitemap-blog.xml"]

    async with sessions() as session:
        counts = dict(
            (await session.execute(
                select(CompetitorItem.source_id, func.count()).where(CompetitorItem.tenant_id == tenant_id)
                .group_by(CompetitorItem.source_id)
            )).all()
        )
        changed = await session.scalar(
            select(CompetitorItem).where(CompetitorItem.source_id == source_id["rss"], CompetitorItem.external_id == "peak-1")
        )
        sources = {s.id: s for s in await session.scalars(select(CompetitorSource).where(CompetitorSource.tenant_id == tenant_id))}
    assert counts == {source_id["rss"]: 5, source_id["atom"]: 2, source_id["sitemap"]: 2, source_id["page"]: 1}
    assert changed.version == 2 and "rock plate" in changed.text and changed.embedding is not None
    assert sources[source_id["atom"]].last_status == "not_modified"
    assert sources[source_id["atom"]].etag == first_atom_etag  # kept from the 200
    assert sources[source_id["private"]].last_status == "disallowed"

    # robots.txt was read, and nothing under /private/ was ever requested (the page nor the child sitemap).
    assert site.log("/robots.txt")
    assert all(h["user-agent"].startswith("AgencyCompetitiveWatch/") for _, h in site.log())
    assert [p for p, _ in site.log() if p.startswith("/private/")] == []

    # Topics cover every item of the last two windows; planning reads them as TopicTrends.
    async with sessions() as session:
        repo = CompetitiveRepository(session)
        topics = await repo.topics(tenant_id)
        trends = await repo.topic_trends(tenant_id)
    assert second.topics == len(topics) >= 1
    assert sum(t.item_count for t in topics) == 10
    assert {p.topic_key for p in second.proposals} <= {t.topic_key for t in topics}
    assert [t.topic for t in trends] == [t.label for t in topics]
    assert all(t.source == "competitor" and t.evidence for t in trends)


async def test_fetch_records_errors_without_failing_and_follows_allowed_redirects(site: Site):
    day = NOW.replace(microsecond=0)
    site.publish("/robots.txt", "text/plain", ROBOTS, modified=day, etag=False)
    site.publish("/feed.xml", "application/rss+xml", rss(RSS_V1), modified=day)
    site.publish("/broken.xml", "application/xml", "<rss><channel><item>", modified=day)
    fetch = CompetitiveFetchActivities(allow_private_networks=True)
    env = ActivityEnvironment()
    try:
        missing = await env.run(fetch.fetch_competitor_source, SourceRef(1, f"{site.url}/gone.xml", "rss"))
        assert (missing.status, missing.http_status) == (FetchStatus.ERROR, 404)
        broken = await env.run(fetch.fetch_competitor_source, SourceRef(2, f"{site.url}/broken.xml", "rss"))
        assert broken.status == FetchStatus.ERROR and "XML" in broken.error
        ok = await env.run(fetch.fetch_competitor_source, SourceRef(3, f"{site.url}/feed.xml", "rss"))
        assert ok.status == FetchStatus.OK and len(ok.items) == 3 and ok.etag
        again = await env.run(fetch.fetch_competitor_source, SourceRef(3, f"{site.url}/feed.xml", "rss", ok.etag))
        assert again.status == FetchStatus.NOT_MODIFIED and again.items == []
    finally:
        await fetch.close()
    refusing = CompetitiveFetchActivities()  # the default: private addresses are refused
    try:
        result = await env.run(refusing.fetch_competitor_source, SourceRef(4, f"{site.url}/feed.xml", "rss"))
    finally:
        await refusing.close()
    assert result.status == FetchStatus.ERROR and "non-public" in result.error
    assert len(site.log("/feed.xml")) == 2  # the refused fetch never reached the site


async def test_schedule_is_created_then_retimed(temporal_env):
    client = temporal_env.client
    tenant = f"sched-{uuid.uuid4().hex[:8]}"
    q = queues(tenant)
    try:
        assert await ensure_competitive_watch_schedule(client, tenant, timedelta(hours=6), q) is True
        handle = client.get_schedule_handle(competitive_watch_schedule_id(tenant))
        await handle.pause(note="paused by a person")
        assert await ensure_competitive_watch_schedule(client, tenant, timedelta(hours=2), q) is False
        description = await handle.describe()
        assert description.schedule.spec.intervals[0].every == timedelta(hours=2)
        assert description.schedule.state.paused  # the person's pause survives the re-timing
        assert description.schedule.action.task_queue == q.orchestration
    finally:
        assert await remove_competitive_watch_schedule(client, tenant) is True
    assert await remove_competitive_watch_schedule(client, tenant) is False


TOPIC_TEXTS = [
    ("Trail running shoes for wet autumn", "Grip and drainage matter most on muddy trails."),
    ("Waterproof trail running shoes tested", "Six pairs of running shoes through mud and rivers."),
    ("Trail running shoes with carbon plates", "Are carbon plated running shoes worth it off road?"),
    ("Ultralight tents under one kilo", "Five backpacking shelters weighed and pitched."),
    ("Pitching an ultralight tent in strong wind", "Guy lines, stakes and angles for a tent in a storm."),
    ("Choosing a tent for backpacking", "Freestanding or trekking pole tents for multi-day hikes."),
]


async def test_real_embedder_groups_competitor_items_into_topics(inference: TritonInference):
    """The Triton embedder with the default clustering threshold: shoes and tents come apart."""
    vectors = await ActivityEnvironment().run(
        CompetitiveEmbedActivities(inference).embed_competitor_texts, [f"{t}. {b}" for t, b in TOPIC_TEXTS]
    )
    assert len(vectors) == len(TOPIC_TEXTS)
    now = datetime(2026, 11, 29, tzinfo=timezone.utc)
    items = [
        TopicItem(key=f"i{n}", title=t, text=b, when=now - timedelta(days=n + 1), vector=v)
        for n, ((t, b), v) in enumerate(zip(TOPIC_TEXTS, vectors, strict=True))
    ]
    topics = build_topics(items, now)
    groups = sorted(sorted(i.key for i in t.items) for t in topics)
    assert groups == [["i0", "i1", "i2"], ["i3", "i4", "i5"]], [(t.label, [i.title for i in t.items]) for t in topics]
    labels = " ".join(t.label for t in topics)
    assert "shoes" in labels and "tent" in labels
