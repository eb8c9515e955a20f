"""Decision agents end to end: a tenant's history -> fitted, gated allocation -> a campaign that
tests its variants and asks a person before moving budget -> an ROI report (HTML + PDF) whose
numbers are the database's."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from agency.db.models import ChannelMetric
from agency.mmm.history import api_rows, tenant_market
from agency.mmm.simulator import simulate
from agency.reports.roi import count, money
from api_flow import finished, in_phase, record_history, start_campaign, wait_for
from conftest import api_client, fresh_tenant, running_workers, sandbox_client

pytestmark = pytest.mark.integration

# A simulated history on which the recovery gate passes (tests/unit/test_budget_allocation_agent.py
# covers the gate's refusals); weekly spend at the campaign's scale so the ramp limit applies.
HISTORY_SEED = 11
CAMPAIGN = {
    "channels": ["social", "email"],
    "total_budget": "4000.00",
    "start_date": "2026-12-07",
    "end_date": "2026-12-13",
}


def history_rows(channels: list[str], weekly: float, seed: int = HISTORY_SEED) -> list[dict]:
    return api_rows(simulate(tenant_market(channels, weekly_spend_total=weekly, seed=seed)))


def pending_reallocation(view: dict) -> bool:
    return view.get("pending_reallocation") is not None or finished(view)


async def test_history_drives_allocation_steering_and_report(make_settings, temporal_env, sandbox, db_engine):
    tenant = fresh_tenant("decide")
    # Every reallocation needs a person (threshold 0), so the approval path is exercised.
    settings = make_settings(
        reallocation_approval_threshold=0.0, reallocation_min_change=0.0, reallocation_decision_timeout_s=120,
        metrics_rounds=3, metrics_interval_s=1.0, max_posts_per_channel=3,
    )
    async with running_workers(temporal_env.client, settings), api_client(settings, tenant=tenant) as api:
        stored = await api.put("/v1/market/weeks", json={"weeks": history_rows(CAMPAIGN["channels"], 4000.0)})
        assert stored.status_code == 200, stored.text
        assert stored.json() == {"stored": 156, "total_weeks": 156}

        campaign_id = await start_campaign(api, **CAMPAIGN)
        await wait_for(api, campaign_id, in_phase("awaiting_approval"))
        allocation = (await api.get(f"/v1/campaigns/{campaign_id}/allocation")).json()
        assert allocation["market"]["evidence"] == "sufficient", allocation["market"]
        assert allocation["budget"]["evidence"] == "fitted"
        assert allocation["budget"]["expected_conversions"] > 0
        low, high = allocation["budget"]["interval"]
        assert low <= allocation["budget"]["expected_conversions"] <= high
        plan = (await api.get(f"/v1/campaigns/{campaign_id}")).json()["plan"]
        assert any("Market model fitted on 156 weeks" in line for line in plan["rationale"]), plan["rationale"]

        for item in (await api.get(f"/v1/campaigns/{campaign_id}/content")).json():
            if item["approval_state"] == "pending":
                response = await api.post(
                    f"/v1/campaigns/{campaign_id}/approvals", json={"item_id": item["item_id"], "decision": "approve"}
                )
                assert response.status_code == 200, response.text

        view = await wait_for(api, campaign_id, pending_reallocation, temporal=temporal_env.client)
        proposal = view["pending_reallocation"]
        assert proposal is not None, "no reallocation waited for approval"
        decided = await api.post(
            f"/v1/campaigns/{campaign_id}/reallocations",
            json={"round": proposal["round"], "decision": "approve", "note": "follow the returns"},
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["status"] == "approved"
        again = await api.post(
            f"/v1/campaigns/{campaign_id}/reallocations", json={"round": proposal["round"], "decision": "reject"}
        )
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "no_pending_reallocation"

        view = await wait_for(api, campaign_id, finished, temporal=temporal_env.client)
        assert view["status"] == "completed", view

        allocation = (await api.get(f"/v1/campaigns/{campaign_id}/allocation")).json()
        approved = [c for c in allocation["changes"] if c["round"] == proposal["round"]]
        assert approved and approved[0]["status"] == "approved"
        assert approved[0]["decided_by"].startswith("user:")
        # The campaign's stored split is the last accepted one.
        accepted = [c for c in allocation["changes"] if c["status"] in ("approved", "applied")]
        stored_split = {c["channel"]: c["amount_cents"] for c in allocation["budget"]["channels"]}
        assert stored_split == accepted[-1]["after_cents"]
        assert sum(stored_split.values()) == 400_000

        # Budgets were pushed to the channel: each published post got at least one change.
        with sandbox_client(sandbox) as channel:
            posts = channel.get("/v1/posts", params={"campaign_id": campaign_id}).json()["data"]
        assert posts and all(p["budget_changes"] for p in posts), posts

        experiments = (await api.get(f"/v1/campaigns/{campaign_id}/experiments")).json()
        social = [e for e in experiments if e["channel"] == "social"]
        assert len(social) == 1 and len(social[0]["arms"]) >= 2
        assert "p <= 0.05" in social[0]["threshold"]
        assert social[0]["peeks"] >= 1 and social[0]["reason"]

        # The ROI report: HTML with charts and a PDF whose numbers are the database's.
        report = (await api.get(f"/v1/reports/rpt_{campaign_id}")).json()
        assert report["status"] == "ready", report
        html = (await api.get(report["html_url"])).text
        assert "<svg" in html or "<img" in html
        pdf_response = await api.get(report["pdf_url"])
        assert pdf_response.headers["content-type"] == "application/pdf"
        reader = PdfReader(io.BytesIO(pdf_response.content))
        pages = [page.extract_text() for page in reader.pages]
        assert len(pages) >= 2
        for n, text in enumerate(pages, start=1):
            assert f"Page {n} of {len(pages)}" in text
        text = "\n".join(pages)

    latest: dict[str, ChannelMetric] = {}
    async with db_engine.connect() as conn:
        rows = (await conn.execute(
            select(ChannelMetric).where(ChannelMetric.campaign_id == campaign_id).order_by(ChannelMetric.round)
        )).all()
    for row in rows:
        latest[row.item_id] = row
    assert latest, "no metrics stored"
    assert money(sum(r.spend_cents for r in latest.values())) in text
    assert count(sum(r.conversions for r in latest.values())) in text
    for channel in CAMPAIGN["channels"]:
        spend = sum(r.spend_cents for r in latest.values() if r.channel == channel)
        assert money(spend) in text, (channel, money(spend))

    await record_history(temporal_env.client, campaign_id, "campaign_decision_agents", tenant=tenant)
