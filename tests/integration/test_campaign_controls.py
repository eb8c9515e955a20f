"""Steering a running campaign: approval expiry, pause/resume, cancel."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from agency.contracts import CampaignResult
from api_flow import finished, in_phase, record_history, start_campaign, wait_for, workflow_id
from conftest import api_client, running_workers, sandbox_client

pytestmark = pytest.mark.integration


async def test_unapproved_content_expires_after_reminder_and_is_never_published(make_settings, temporal_env, sandbox):
    settings = make_settings(approval_reminder_s=1, approval_timeout_s=2.5)
    async with running_workers(temporal_env.client, settings), api_client(settings) as api:
        campaign_id = await start_campaign(api, channels=["social"])
        view = await wait_for(api, campaign_id, lambda v: v["reminders_sent"] == 1 and v["live"], temporal=temporal_env.client)
        assert view["phase"] == "awaiting_approval" and not view["escalated"]
        view = await wait_for(api, campaign_id, finished, temporal=temporal_env.client)

    await record_history(temporal_env.client, campaign_id, "campaign_approval_expired")
    result = await temporal_env.client.get_workflow_handle(workflow_id(campaign_id), result_type=CampaignResult).result()
    assert result.published == 0
    assert result.expired == len(view["items"]) - result.blocked > 0
    assert {i["approval_state"] for i in view["items"]} <= {"expired", "blocked"}
    with sandbox_client(sandbox) as channel:
        assert channel.get("/v1/posts", params={"campaign_id": campaign_id}).json()["data"] == []


async def test_pause_holds_the_campaign_until_resume(make_settings, temporal_env):
    settings = make_settings()
    async with running_workers(temporal_env.client, settings), api_client(settings) as api:
        campaign_id = await start_campaign(api, channels=["email"])
        assert (await api.post(f"/v1/campaigns/{campaign_id}/pause")).status_code == 202
        paused = await wait_for(api, campaign_id, lambda v: v["paused"], temporal=temporal_env.client)
        assert paused["status"] == "paused"
        await asyncio.sleep(2)
        still = (await api.get(f"/v1/campaigns/{campaign_id}")).json()
        # A paused campaign does not enter a new phase.
        assert still["phase"] == paused["phase"] and still["paused"]
        assert (await api.post(f"/v1/campaigns/{campaign_id}/resume")).status_code == 202
        view = await wait_for(api, campaign_id, in_phase("awaiting_approval"), temporal=temporal_env.client)
        assert not view["paused"]
        await api.post(f"/v1/campaigns/{campaign_id}/cancel")
        await wait_for(api, campaign_id, finished, temporal=temporal_env.client)


async def test_cancel_stops_the_campaign_and_records_it(make_settings, temporal_env, sandbox):
    settings = make_settings()
    async with running_workers(temporal_env.client, settings), api_client(settings) as api:
        campaign_id = await start_campaign(api, channels=["social"])
        await wait_for(api, campaign_id, in_phase("awaiting_approval"), temporal=temporal_env.client)
        response = await api.post(f"/v1/campaigns/{campaign_id}/cancel")
        assert response.status_code == 202
        # A second Cancel (say, from the Temporal UI) while the first is being recorded.
        with contextlib.suppress(RPCError):
            await temporal_env.client.get_workflow_handle(workflow_id(campaign_id)).cancel()
        view = await wait_for(api, campaign_id, finished, temporal=temporal_env.client)
        assert view["status"] == "cancelled"
        await record_history(temporal_env.client, campaign_id, "campaign_cancelled")
        desc = await temporal_env.client.get_workflow_handle(workflow_id(campaign_id)).describe()
        assert desc.status == WorkflowExecutionStatus.CANCELED
        # A closed campaign takes no more approvals.
        late = await api.post(
            f"/v1/campaigns/{campaign_id}/approvals",
            json={"item_id": view["items"][0]["item_id"], "decision": "approve"},
        )
        assert late.status_code == 409 and late.json()["error"]["code"] == "campaign_closed"
    with sandbox_client(sandbox) as channel:
        assert channel.get("/v1/posts", params={"campaign_id": campaign_id}).json()["data"] == []


async def test_same_idempotency_key_starts_one_campaign(make_settings, temporal_env):
    settings = make_settings()
    async with running_workers(temporal_env.client, settings), api_client(settings) as api:
        headers = {"Idempotency-Key": "launch-2026-12"}
        from api_flow import BRIEF

        first = await api.post("/v1/campaigns", json={**BRIEF, "channels": ["email"]}, headers=headers)
        second = await api.post("/v1/campaigns", json={**BRIEF, "channels": ["email"]}, headers=headers)
        assert first.status_code == second.status_code == 202
        assert first.json()["campaign_id"] == second.json()["campaign_id"]
        await api.post(f"/v1/campaigns/{first.json()['campaign_id']}/cancel")
        await wait_for(api, first.json()["campaign_id"], finished, temporal=temporal_env.client)


async def test_cancel_while_content_is_generating_is_recorded(make_settings, temporal_env, sandbox):
    """The cancel reaches the workflow wrapped in the child workflows' errors; it is still recorded."""
    settings = make_settings()
    async with running_workers(temporal_env.client, settings), api_client(settings) as api:
        campaign_id = await start_campaign(api)
        await wait_for(api, campaign_id, in_phase("generating"), temporal=temporal_env.client)
        assert (await api.post(f"/v1/campaigns/{campaign_id}/cancel")).status_code == 202
        view = await wait_for(api, campaign_id, finished, temporal=temporal_env.client)
        await record_history(temporal_env.client, campaign_id, "campaign_cancelled_while_generating")
    assert view["status"] == "cancelled" and view["phase"] == "cancelled"
    desc = await temporal_env.client.get_workflow_handle(workflow_id(campaign_id)).describe()
    assert desc.status == WorkflowExecutionStatus.CANCELED
    with sandbox_client(sandbox) as channel:
        assert channel.get("/v1/posts", params={"campaign_id": campaign_id}).json()["data"] == []
