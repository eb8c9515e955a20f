"""The approval inbox: pending items across a tenant's campaigns (seeded rows), and decisions sent
through it to a real running campaign workflow."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from agency.db.models import AuditEvent, Campaign, ContentReview, ContentVersion
from agency.db.repository import CampaignRepository
from api_flow import in_phase, start_campaign, wait_for
from conftest import api_client, free_port, running_workers, stack_settings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)
FINDING = {"rule": "length.near_max", "severity": "warn", "message": "close to the limit", "excerpt": ""}



@pytest.fixture
def light_settings(migrated_database_url, temporal_env, tmp_path, request):
    # Seeded rows only: no model server or channel is dialled (dead ports).
    dead = f"127.0.0.1:{free_port()}"
    return stack_settings(
        database_url=migrated_database_url, temporal=temporal_env, triton_url=dead, sandbox_url=f"http://{dead}",
        data_dir=tmp_path / "data", queue_suffix=request.node.name,
    )


async def seed_item(session, campaign_id: str, n: int, channel: str, fmt: str, state: str, minutes: int, **extra):
    item_id = f"{campaign_id}:{channel}:{n}"
    await CampaignRepository(session).save_content_version(
        item_id=item_id, campaign_id=campaign_id, channel=channel, format=fmt, publish_on=date(2026, 12, n),
        version=1, title=extra.get("title", ""), body=f"copy of {item_id}", model="content_generator@1",
        prompt_tokens=10, completion_tokens=20,
        compliance={"passed": state != "blocked", "findings": [FINDING]}, approval_state=state,
    )
    # Drafting times set explicitly: the inbox is ordered by them.
    await session.execute(
        update(ContentVersion).where(ContentVersion.item_id == item_id).values(
            created_at=T0 + timedelta(minutes=minutes),
            parts=extra.get("parts", {}),
            generation={"variant": 2, "candidates": 3},
        )
    )
    return item_id


async def seed_campaign(session, tenant: str, name: str, status: str = "running") -> str:
    campaign_id = f"cmp_{uuid.uuid4().hex[:20]}"
    workflow_id = f"{tenant}/{campaign_id}"  # no such workflow runs: these rows are seeded
    await CampaignRepository(session).create_campaign(campaign_id, tenant, name, {"tenant": tenant}, workflow_id)
    if status != "running":
        await session.execute(update(Campaign).where(Campaign.id == campaign_id).values(status=status))
    return campaign_id


async def test_inbox_lists_pending_items_across_campaigns(light_settings, sessions):
    tenant, other = f"inbox-{uuid.uuid4().hex[:8]}", f"inbox-other-{uuid.uuid4().hex[:8]}"
    async with sessions() as s, s.begin():
        boots = await seed_campaign(s, tenant, "Boots")
        socks = await seed_campaign(s, tenant, "Socks")
        closed = await seed_campaign(s, tenant, "Old", status="cancelled")
        theirs = await seed_campaign(s, other, "Theirs")
        blog = await seed_item(s, boots, 1, "blog", "blog_post", "pending", 30, title="Dry feet",
                               parts={"outline": "1. Rain\n2. Trail", "cta": "Shop now"})
        x_post = await seed_item(s, boots, 2, "social", "x_post", "pending", 10, parts={"hashtags": "hike"})
        await seed_item(s, boots, 3, "email", "email", "approved", 0)
        await seed_item(s, boots, 4, "social", "linkedin_post", "blocked", 5)
        email = await seed_item(s, socks, 1, "email", "email", "pending", 20, title="Warm toes")
        await seed_item(s, closed, 1, "blog", "blog_post", "pending", 1)
        their_item = await seed_item(s, theirs, 1, "blog", "blog_post", "pending", 2)

    async with api_client(light_settings, tenant=tenant, role="viewer") as api:
        listed = await api.get("/v1/approvals")
        assert listed.status_code == 200, listed.text
        page = listed.json()
        # Only pending items of running campaigns of this tenant, longest waiting first.
        assert [i["item_id"] for i in page["items"]] == [x_post, email, blog]
        assert page["next_cursor"] is None
        first_blog = page["items"][2]
        assert first_blog | {"created_at": None} == {
            "item_id": blog, "campaign_id": boots, "campaign_name": "Boots", "channel": "blog",
            "format": "blog_post", "publish_on": "2026-12-01", "version": 1, "title": "Dry feet",
            "body": f"copy of {blog}", "parts": {"outline": "1. Rain\n2. Trail", "cta": "Shop now"},
            "compliance_passed": True, "findings": [FINDING], "generation": {"variant": 2, "candidates": 3},
            "model": "content_generator@1", "created_at": None,
        }
        assert datetime.fromisoformat(first_blog["created_at"]) == T0 + timedelta(minutes=30)

        async def ids(**params) -> list[str]:
            response = await api.get("/v1/approvals", params=params)
            assert response.status_code == 200, response.text
            return [i["item_id"] for i in response.json()["items"]]

        assert await ids(campaign_id=socks) == [email]
        assert await ids(campaign_id=theirs) == []  # another tenant's campaign: simply nothing
        assert await ids(channel="social") == [x_post]
        assert await ids(format="blog_post") == [blog]
        assert await ids(channel="email", campaign_id=boots) == []

        # Pages of two: the cursor continues exactly where the last page ended.
        one = (await api.get("/v1/approvals", params={"limit": 2})).json()
        assert [i["item_id"] for i in one["items"]] == [x_post, email] and one["next_cursor"]
        two = (await api.get("/v1/approvals", params={"limit": 2, "cursor": one["next_cursor"]})).json()
        assert [i["item_id"] for i in two["items"]] == [blog] and two["next_cursor"] is None

        for params, field in (
            ({"channel": "tv"}, "channel"),
            ({"format": "fax"}, "format"),
            ({"limit": 0}, "limit"),
            ({"limit": 201}, "limit"),
            ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
        ):
            response = await api.get("/v1/approvals", params=params)
            assert response.status_code == 422, (params, response.text)
            assert response.json()["error"]["code"] == "validation_error"
            assert response.json()["error"]["fields"][0]["loc"] == ["query", field]

        # A viewer reads the inbox but decides nothing.
        refused = await api.post(f"/v1/approvals/{blog}", json={"action": "approve"})
        assert refused.status_code == 403

    async with api_client(light_settings, tenant=other) as them:
        assert [i["item_id"] for i in (await them.get("/v1/approvals")).json()["items"]] == [their_item]
        # Deciding on another tenant's item reads exactly like a missing one.
        for item in (blog, "cmp_nope:blog:1"):
            response = await them.post(f"/v1/approvals/{item}", json={"action": "approve"})
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] == "not_found"

    async with api_client(light_settings, tenant=tenant, role="marketer") as api:
        for item, body, field in (
            (blog, {"action": "reject"}, "reason"),
            (blog, {"action": "reject", "reason": "  "}, "reason"),
            (blog, {"action": "edit", "title": "New"}, "body"),
            (blog, {"action": "edit", "body": "New copy"}, "title"),  # a blog post keeps a title
            (x_post, {"action": "edit", "title": "T", "body": "New copy"}, "title"),  # an X post has none
            (blog, {"action": "approve", "reviewer": "someone"}, "reviewer"),
        ):
            response = await api.post(f"/v1/approvals/{item}", json=body)
            assert response.status_code == 422, (body, response.text)
            error = response.json()["error"]
            assert error["code"] == "validation_error" and error["fields"][0]["loc"][-1] == field, error
        # The seeded campaign has no workflow: the decision cannot be applied anywhere.
        orphan = await api.post(f"/v1/approvals/{blog}", json={"action": "approve"})
        assert orphan.status_code == 404 and "no workflow" in orphan.json()["error"]["message"]


async def test_inbox_decisions_reach_the_campaign_workflow(make_settings, temporal_env, sessions):
    settings = make_settings()
    async with running_workers(temporal_env.client, settings), api_client(settings) as api:
        campaign_id = await start_campaign(api)
        await wait_for(api, campaign_id, in_phase("awaiting_approval"), temporal=temporal_env.client)

        inbox = (await api.get("/v1/approvals", params={"campaign_id": campaign_id})).json()["items"]
        assert len(inbox) >= 3, inbox
        assert all(i["campaign_id"] == campaign_id and i["body"] for i in inbox)
        edited = next(i for i in inbox if i["format"] in ("blog_post", "email"))
        approved = next(i for i in inbox if i["format"] not in ("blog_post", "email"))
        rejected = next(i for i in reversed(inbox) if i not in (edited, approved))

        # Malformed decisions never reach the workflow.
        no_title = await api.post(f"/v1/approvals/{edited['item_id']}", json={"action": "edit", "body": "Mine."})
        assert no_title.status_code == 422
        no_reason = await api.post(f"/v1/approvals/{rejected['item_id']}", json={"action": "reject"})
        assert no_reason.status_code == 422

        ok = await api.post(f"/v1/approvals/{approved['item_id']}", json={"action": "approve", "reason": "on brand"})
        assert ok.status_code == 200, ok.text
        assert ok.json() | {"remaining_pending": 0} == {
            "item_id": approved["item_id"], "campaign_id": campaign_id, "action": "approve",
            "approval_state": "approved", "remaining_pending": 0,
        }
        # The workflow judges what is pending: deciding twice is a conflict.
        twice = await api.post(
            f"/v1/approvals/{approved['item_id']}", json={"action": "reject", "reason": "changed my mind"}
        )
        assert twice.status_code == 409 and twice.json()["error"]["code"] == "not_pending"

        no = await api.post(f"/v1/approvals/{rejected['item_id']}", json={"action": "reject", "reason": "too salesy"})
        assert no.status_code == 200, no.text
        # Rejected, or back to drafting when the reason is fed into a regeneration.
        assert no.json()["approval_state"] in ("rejected", "drafting")

        # An edit is checked like any draft: copy with an e-mail address in it is refused, with the findings.
        leaky = await api.post(
            f"/v1/approvals/{edited['item_id']}",
            json={"action": "edit", "title": edited["title"], "body": f"{edited['body']} Mail jane.doe@example.com."},
        )
        assert leaky.status_code == 422, leaky.text
        error = leaky.json()["error"]
        assert error["code"] == "edited_copy_blocked"
        assert any(f["rule"].startswith("pii") for f in error["details"]["findings"]), error
        fixed_body = edited["body"] + " Tested on the trail."
        fixed = await api.post(
            f"/v1/approvals/{edited['item_id']}",
            json={"action": "edit", "title": edited["title"], "body": fixed_body, "reason": "tightened"},
        )
        assert fixed.status_code == 200, fixed.text
        assert fixed.json()["approval_state"] == "approved"
        content = {c["item_id"]: c for c in (await api.get(f"/v1/campaigns/{campaign_id}/content")).json()}
        assert content[edited["item_id"]]["version"] == edited["version"] + 1
        assert content[edited["item_id"]]["body"] == fixed_body
        assert content[edited["item_id"]]["model"].startswith("reviewer:user:")

        still = (await api.get("/v1/approvals", params={"campaign_id": campaign_id})).json()["items"]
        listed = [i["item_id"] for i in still]
        assert approved["item_id"] not in listed and edited["item_id"] not in listed

        # The decisions were recorded by the workflow's review activity with the reviewer of record
        # (the caller) and the rejection reason; and each applied API call has its audit record.
        async with sessions() as s:
            rows = (await s.scalars(select(ContentReview).where(ContentReview.item_id.in_(
                [approved["item_id"], rejected["item_id"], edited["item_id"]])))).all()
            audited = (await s.scalars(select(AuditEvent).where(
                AuditEvent.subject_type == "content_item", AuditEvent.action == "approvals.decide",
                AuditEvent.subject_id.in_([approved["item_id"], rejected["item_id"], edited["item_id"]]),
            ))).all()
        reviews = {(r.item_id, r.decision): r for r in rows}
        assert reviews[(rejected["item_id"], "rejected")].note == "too salesy"
        assert reviews[(edited["item_id"], "approved")].note == "tightened"
        reviewer = reviews[(approved["item_id"], "approved")].reviewer
        assert reviewer.startswith("user:") and reviews[(rejected["item_id"], "rejected")].reviewer == reviewer
        assert sorted((e.subject_id, e.detail["action"]) for e in audited) == sorted([
            (approved["item_id"], "approve"), (rejected["item_id"], "reject"), (edited["item_id"], "edit"),
        ])
        assert all(e.outcome == "ok" and e.detail["campaign_id"] == campaign_id for e in audited)

        cancelled = await api.post(f"/v1/campaigns/{campaign_id}/cancel")
        assert cancelled.status_code == 202
