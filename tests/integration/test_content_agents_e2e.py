"""Content agents in a running campaign, through the HTTP API on the real Temporal, PostgreSQL and
Triton: the brand profile in force, the strategy calendar's coordinated sets, ranked candidates,
the approval inbox (reject with a reason -> redraft, edit then approve, an edit the checks refuse)."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import pytest

from api_flow import finished, in_phase, record_history, start_campaign, wait_for
from conftest import api_client, running_workers

pytestmark = pytest.mark.integration

BRAND = {
    "voice": "warm, practical and plain-spoken",
    "vocabulary_use": ["trail", "dry feet"],
    "vocabulary_avoid": ["cheap", "revolutionary"],
    "claims_needing_substantiation": ["waterproof"],
    "personas": [{"name": "Weekend hiker", "description": "hikes most weekends, in any weather"}],
}


def _inbox_item(api_items: list[dict], item_id: str) -> dict | None:
    return next((i for i in api_items if i["item_id"] == item_id), None)


async def test_content_agents_in_a_campaign(make_settings, temporal_env, inference):
    settings = make_settings(generation_variants=2, content_concurrency=3, review_regenerations=1, max_posts_per_channel=3)
    calls_before = await inference.inference_count("content_generator")

    async with running_workers(temporal_env.client, settings), api_client(settings) as api:
        brand = await api.put("/v1/brand", json=BRAND)
        assert brand.status_code in (200, 201), brand.text
        brand_version = brand.json()["version"]

        campaign_id = await start_campaign(api, end_date="2026-12-07")
        await wait_for(api, campaign_id, in_phase("awaiting_approval"), timeout_s=600, temporal=temporal_env.client)

        # The strategy agent's calendar is kept with its rationale; the brand version is recorded.
        view = (await api.get(f"/v1/campaigns/{campaign_id}")).json()
        assert view["brand_version"] == brand_version
        calendar = view["calendar"]
        assert calendar["rationale"] and calendar["messages"]
        assert {m["message_id"] for m in calendar["messages"]} >= {e["message_id"] for e in calendar["entries"]}

        content = (await api.get(f"/v1/campaigns/{campaign_id}/content")).json()
        assert sorted(i["item_id"] for i in content) == sorted(e["item_id"] for e in calendar["entries"])
        formats = {item["format"] for item in content}
        assert {"blog_post", "email", "x_post", "linkedin_post", "instagram_caption"} <= formats, formats

        # Coordinated sets: each social slot is one post per network, same message, same day.
        social = [i for i in content if i["channel"] == "social"]
        slots: dict[tuple[str, str], list[str]] = {}
        for item in content:
            assert item["generation"]["message_id"], item
            assert item["generation"]["brand_version"] == brand_version
            if item["channel"] == "social":
                slots.setdefault((item["generation"]["message_id"], item["publish_on"]), []).append(item["format"])
        assert social and slots
        for networks in slots.values():
            assert sorted(networks) == ["instagram_caption", "linkedin_post", "x_post"]
        # The set shares one call to action.
        ctas = {i["generation"]["message_id"]: set() for i in content}
        for item in content:
            ctas[item["generation"]["message_id"]].add(item["generation"]["message"]["cta"])
        assert all(len(c) == 1 for c in ctas.values())

        # Every item: N ranked candidates per round, model calls counted in Triton.
        calls = sum(len(r["candidates"]) for i in content for r in i["generation"]["rounds"])
        assert await inference.inference_count("content_generator") - calls_before == calls
        for item in content:
            rounds = item["generation"]["rounds"]
            assert all(len(r["candidates"]) == 2 for r in rounds)
            assert item["version"] == len(rounds)
            if item["approval_state"] == "pending":
                assert item["compliance"]["passed"]
                text = f"{item['title']} {item['body']}".lower()
                assert "cheap" not in text and "revolutionary" not in text

        inbox = (await api.get("/v1/approvals", params={"campaign_id": campaign_id})).json()["items"]
        pending = [i for i in content if i["approval_state"] == "pending"]
        assert {i["item_id"] for i in inbox} == {i["item_id"] for i in pending}
        assert len(pending) >= 3, [(i["item_id"], i["approval_state"]) for i in content]

        to_reject = next(i for i in pending if i["channel"] == "social")
        to_edit = next((i for i in pending if i["format"] == "email"), None) or next(
            i for i in pending if i["item_id"] != to_reject["item_id"]
        )
        others = [i for i in pending if i["item_id"] not in (to_reject["item_id"], to_edit["item_id"])]

        # An edit that breaks the brand's rules is refused with the findings, and changes nothing.
        refused = await api.post(
            f"/v1/approvals/{quote(to_edit['item_id'], safe='')}",
            json={"action": "edit", "body": to_edit["body"] + " A revolutionary boot.", "title": to_edit["title"] or None},
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "edited_copy_blocked"

        edited_body = to_edit["body"].rstrip() + " Tested on wet trails."
        edit = await api.post(
            f"/v1/approvals/{quote(to_edit['item_id'], safe='')}",
            json={"action": "edit", "body": edited_body, "title": to_edit["title"] or None, "reason": "tightened"},
        )
        assert edit.status_code == 200, edit.text

        reason = "Mention that the boots need no breaking in"
        reject = await api.post(
            f"/v1/approvals/{quote(to_reject['item_id'], safe='')}", json={"action": "reject", "reason": reason}
        )
        assert reject.status_code == 200, reject.text
        for item in others:
            ok = await api.post(f"/v1/approvals/{quote(item['item_id'], safe='')}", json={"action": "approve"})
            assert ok.status_code == 200, ok.text

        # The rejected item is redrafted with the reason in its brief and comes back to the inbox.
        redraft = None
        for _ in range(600):
            inbox = (await api.get("/v1/approvals", params={"campaign_id": campaign_id})).json()["items"]
            redraft = _inbox_item(inbox, to_reject["item_id"])
            if redraft is not None:
                break
            view = (await api.get(f"/v1/campaigns/{campaign_id}")).json()
            assert view["phase"] == "awaiting_approval", view
            await asyncio.sleep(0.5)
        assert redraft is not None, "the rejected item never came back for review"
        assert redraft["version"] > to_reject["version"]
        assert reason in redraft["generation"]["rounds"][0]["feedback"]
        ok = await api.post(f"/v1/approvals/{quote(to_reject['item_id'], safe='')}", json={"action": "approve"})
        assert ok.status_code == 200, ok.text

        view = await wait_for(api, campaign_id, finished, timeout_s=300, temporal=temporal_env.client)
        assert view["status"] == "completed", view

        stored = {i["item_id"]: i for i in (await api.get(f"/v1/campaigns/{campaign_id}/content")).json()}
        assert stored[to_edit["item_id"]]["body"] == edited_body
        assert stored[to_edit["item_id"]]["model"].startswith("reviewer:")
        assert stored[to_edit["item_id"]]["approval_state"] == "approved"
        assert stored[to_reject["item_id"]]["approval_state"] == "approved"
        assert stored[to_reject["item_id"]]["version"] == redraft["version"]

        # The performance analysis ran at the end and is what the next calendar will apply.
        analysis = await api.get("/v1/content/recommendations")
        assert analysis.status_code == 200, analysis.text
        assert analysis.json()["campaign_id"] == campaign_id
        assert analysis.json()["summary"]["items"] >= len([i for i in stored.values() if i["external_id"]])

        await record_history(temporal_env.client, campaign_id, "campaign_content_agents")

    async with api_client(settings, tenant=f"fresh-{campaign_id[-6:]}") as newcomer:
        none_yet = await newcomer.get("/v1/content/recommendations")
        assert none_yet.status_code == 404
        assert none_yet.json()["error"]["code"] == "not_found"
