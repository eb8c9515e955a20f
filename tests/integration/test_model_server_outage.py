"""Triton killed during a campaign: the campaign says it is degraded, waits, and completes once
Triton is back, with every content item stored once."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from api_flow import finished, in_phase, record_history, start_campaign, wait_for
from conftest import api_client, running_triton, running_workers, sandbox_client

from agency.db.models import AuditEvent, ContentItem, ContentVersion
from agency.triton_server import TritonServer

pytestmark = pytest.mark.integration


@pytest.fixture
def own_triton(tmp_path) -> Iterator[TritonServer]:
    """A Triton this test may kill."""
    with running_triton(tmp_path) as server:
        yield server


def kill_hard(server: TritonServer) -> None:
    """SIGKILL the whole server process group, as a crashed node would; then reap it."""
    assert server.pid is not None
    os.killpg(server.pid, signal.SIGKILL)
    server.stop()


async def test_campaign_waits_through_a_triton_outage_and_completes(
    make_settings, temporal_env, own_triton, sandbox, db_session
):
    settings = make_settings(
        triton_url=own_triton.grpc_url,
        triton_home_dir=own_triton.settings.triton_home,
        model_server_probe_max_interval_s=1.0,
    )
    async with running_workers(temporal_env.client, settings), api_client(settings) as api:
        campaign_id = await start_campaign(api)
        kill_hard(own_triton)

        degraded = await wait_for(api, campaign_id, lambda view: view["degraded"], temporal=temporal_env.client)
        assert degraded["phase"] == "generating"
        assert degraded["status"] != "failed"
        assert "model server unavailable" in degraded["degraded_reason"]
        # It keeps waiting, still degraded, rather than failing.
        await asyncio.sleep(3)
        view = (await api.get(f"/v1/campaigns/{campaign_id}")).json()
        assert view["degraded"] and view["phase"] == "generating", view

        await asyncio.to_thread(own_triton.start)

        view = await wait_for(
            api, campaign_id, in_phase("awaiting_approval", "publishing", "completed"), temporal=temporal_env.client
        )
        assert not view["degraded"] and view["degraded_reason"] == ""
        content = (await api.get(f"/v1/campaigns/{campaign_id}/content")).json()
        assert {item["channel"] for item in content} == {"blog", "social", "email"}
        pending = [item for item in content if item["approval_state"] == "pending"]
        for item in pending:
            response = await api.post(
                f"/v1/campaigns/{campaign_id}/approvals", json={"item_id": item["item_id"], "decision": "approve"}
            )
            assert response.status_code == 200, response.text
        view = await wait_for(api, campaign_id, finished, temporal=temporal_env.client)
        assert view["status"] == "completed"
        await record_history(temporal_env.client, campaign_id, "campaign_model_server_outage")

    # No duplicates: one row per item, versions 1..n per item, one "drafted" record per version.
    items = (await db_session.scalars(select(ContentItem).where(ContentItem.campaign_id == campaign_id))).all()
    assert sorted(i.id for i in items) == sorted(c["item_id"] for c in content)
    for item in items:
        versions = (await db_session.scalars(select(ContentVersion.version).where(ContentVersion.item_id == item.id))).all()
        assert sorted(versions) == list(range(1, item.current_version + 1))
    drafted = (
        await db_session.scalars(
            select(AuditEvent).where(AuditEvent.subject_type == "content_item", AuditEvent.action == "content.drafted")
        )
    ).all()
    per_version = Counter((e.subject_id, e.detail.get("version")) for e in drafted if e.subject_id in {i.id for i in items})
    assert per_version and set(per_version.values()) == {1}
    # The channel got each approved item exactly once.
    with sandbox_client(sandbox) as channel:
        posts = channel.get("/v1/posts", params={"campaign_id": campaign_id}).json()["data"]
    assert sorted(p["item_id"] for p in posts) == sorted(i["item_id"] for i in pending)
