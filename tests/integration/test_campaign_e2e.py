"""A campaign end to end through the HTTP API, on the real Temporal, PostgreSQL and Triton."""

from __future__ import annotations

from pathlib import Path

import pytest

from api_flow import finished, in_phase, record_history, start_campaign, wait_for
from conftest import api_client, running_workers, sandbox_client

pytestmark = pytest.mark.integration


async def test_campaign_runs_end_to_end_with_human_approval(make_settings, temporal_env, inference, sandbox):
    settings = make_settings()
    generated_before = await inference.inference_count("content_generator")

    async with running_workers(temporal_env.client, settings), api_client(settings) as api:
        campaign_id = await start_campaign(api)
        view = await wait_for(api, campaign_id, in_phase("awaiting_approval"))
        assert {"planning", "budgeting", "scheduling", "generating"} <= set(view["completed_phases"])

        content = (await api.get(f"/v1/campaigns/{campaign_id}/content")).json()
        assert {item["channel"] for item in content} == {"blog", "social", "email"}
        # Every stored draft came from the model in Triton: one inference per generation attempt.
        attempts = sum(item["version"] for item in content)
        assert await inference.inference_count("content_generator") - generated_before == attempts
        for item in content:
            assert item["model"].startswith("content_generator")
            assert item["completion_tokens"] > 0
            assert len(item["body"]) > 20
            if item["format"] in ("social_post", "x_post"):
                assert len(item["body"]) <= 280
            if item["channel"] == "email":
                assert 0 < len(item["title"]) <= 78

        pending = [item for item in content if item["approval_state"] == "pending"]
        assert len(pending) >= 2, content
        approved, rejected = pending[:-1], pending[-1]
        for item in approved:
            response = await api.post(
                f"/v1/campaigns/{campaign_id}/approvals",
                json={"item_id": item["item_id"], "decision": "approve"},
            )
            assert response.status_code == 200, response.text
            assert response.json()["approval_state"] == "approved"
        # Deciding twice is a conflict, not a silent overwrite.
        again = await api.post(
            f"/v1/campaigns/{campaign_id}/approvals",
            json={"item_id": approved[0]["item_id"], "decision": "reject"},
        )
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "not_pending"
        response = await api.post(
            f"/v1/campaigns/{campaign_id}/approvals",
            json={"item_id": rejected["item_id"], "decision": "reject", "note": "off-brand"},
        )
        assert response.status_code == 200
        assert response.json()["remaining_pending"] == 0

        view = await wait_for(api, campaign_id, finished)
        assert view["status"] == "completed"

        # The channel received each approved item exactly once, and nothing else.
        with sandbox_client(sandbox) as channel:
            posts = channel.get("/v1/posts", params={"campaign_id": campaign_id}).json()["data"]
        assert sorted(p["item_id"] for p in posts) == sorted(i["item_id"] for i in approved)

        stored = {i["item_id"]: i for i in (await api.get(f"/v1/campaigns/{campaign_id}/content")).json()}
        assert stored[rejected["item_id"]]["approval_state"] == "rejected"
        assert stored[rejected["item_id"]]["external_id"] is None
        assert all(stored[i["item_id"]]["approval_state"] == "approved" for i in approved)
        assert all(stored[i["item_id"]]["external_id"] for i in approved)

        report = await api.get(f"/v1/campaigns/{campaign_id}/report")
        assert report.status_code == 200, report.text
        html = (await api.get(f"/v1/campaigns/{campaign_id}/report", params={"format": "html"})).text
        assert html.count("<svg") >= 2
        assert Path(report.json()["html_path"]).exists()

        await record_history(temporal_env.client, campaign_id, "campaign_approved_and_rejected")
