"""/v1/competitors end to end: register sources (Schedule created), poll now through the API with
real workers, read poll status and topics; bad URLs and missing permissions refused."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from agency.contracts import TaskQueues
from conftest import api_client
from test_competitive_watch import ATOM, RSS_V1, ROBOTS, WordEmbedder, rss, site, watch_workers  # noqa: F401
from workers.competitive_schedule import competitive_watch_schedule_id, remove_competitive_watch_schedule

pytestmark = pytest.mark.integration


async def test_register_poll_and_read_topics(make_settings, temporal_env, db_engine, site):  # noqa: F811
    day = datetime.now(timezone.utc) - timedelta(days=1)
    site.publish("/robots.txt", "text/plain", ROBOTS, modified=day, etag=False)
    site.publish("/feed.xml", "application/rss+xml", rss(RSS_V1), modified=day)
    site.publish("/atom.xml", "application/atom+xml", ATOM, modified=day)
    settings = make_settings()
    tenant = f"cmp-api-{uuid.uuid4().hex[:8]}"
    client = temporal_env.client
    sources = [
        {"url": f"{site.url}/feed.xml", "kind": "rss"},
        {"url": f"{site.url}/atom.xml", "kind": "atom"},
        {"url": f"{site.url}/private/roadmap.html", "kind": "page"},
    ]
    try:
        async with api_client(settings, tenant=tenant) as api:
            bad = await api.put("/v1/competitors", json={"sources": [{"url": "ftp://x.example/feed", "kind": "rss"}]})
            assert bad.status_code == 422 and bad.json()["error"]["code"]
            bad = await api.put("/v1/competitors", json={"sources": sources, "interval_minutes": 1})
            assert bad.status_code == 422
            early = await api.post("/v1/competitors/poll")
            assert early.status_code == 409 and early.json()["error"]["code"] == "no_sources"

            put = await api.put("/v1/competitors", json={"sources": sources, "interval_minutes": 120})
            assert put.status_code == 200, put.text
            body = put.json()
            assert body["interval_minutes"] == 120
            assert [s["last_status"] for s in body["sources"]] == ["never"] * 3
            described = await client.get_schedule_handle(competitive_watch_schedule_id(tenant)).describe()
            assert described.schedule.spec.intervals[0].every == timedelta(hours=2)

            queues = TaskQueues(settings.queue_orchestration, settings.queue_inference, settings.queue_integrations)
            sessions = async_sessionmaker(db_engine, expire_on_commit=False)
            async with watch_workers(client, sessions, WordEmbedder(), queues):
                started = await api.post("/v1/competitors/poll", headers={"Idempotency-Key": "poll-1"})
                assert started.status_code == 202, started.text
                workflow_id = started.json()["workflow_id"]
                await client.get_workflow_handle(workflow_id).result()
                again = await api.post("/v1/competitors/poll", headers={"Idempotency-Key": "poll-1"})
                assert again.json()["workflow_id"] == workflow_id  # the same poll, not a second one

            listed = (await api.get("/v1/competitors")).json()
            status = {s["url"].rsplit("/", 1)[-1]: (s["last_status"], s["items"]) for s in listed["sources"]}
            assert status == {"feed.xml": ("ok", 3), "atom.xml": ("ok", 2), "roadmap.html": ("disallowed", 0)}

            topics = (await api.get("/v1/competitors/topics")).json()
            assert topics["topics"] and sum(t["items"] for t in topics["topics"]) == 5
            for t in topics["topics"]:
                assert t["recent"] + t["previous"] <= t["items"] and t["window_days"] == 14

        async with api_client(settings, tenant=tenant, role="viewer") as viewer:
            assert (await viewer.get("/v1/competitors")).status_code == 200
            denied = await viewer.put("/v1/competitors", json={"sources": sources})
            assert denied.status_code == 403
    finally:
        await remove_competitive_watch_schedule(client, tenant)
    assert [p for p, _ in site.log() if p.startswith("/private/")] == []
