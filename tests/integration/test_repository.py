"""CampaignRepository against a real PostgreSQL: idempotent writes and the queries planners use.

Each test writes through ``async with session.begin()`` exactly like the activities do; the
``db_session`` fixture rolls everything back afterwards.
"""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from agency.contracts import ChannelHistory, ItemMetrics
from agency.db.models import Campaign, CampaignStep, ChannelMetric, ContentReview, ContentVersion, Tenant
from agency.db.repository import CampaignRepository, RecordNotFound

pytestmark = pytest.mark.integration

BRIEF = {"tenant": "acme", "product": "Trail shoes", "audience": "trail runners", "total_budget_cents": 500_000}


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def _campaign(repo: CampaignRepository, tenant: str, campaign_id: str | None = None) -> str:
    campaign_id = campaign_id or _id("cmp")
    async with repo.session.begin():
        await repo.create_campaign(campaign_id, tenant, "Spring launch", BRIEF, f"wf-{campaign_id}")
    return campaign_id


async def _content(
    repo: CampaignRepository,
    campaign_id: str,
    item_id: str,
    *,
    version: int = 1,
    body: str = "Run further.",
    publish_on: date = date(2026, 3, 2),
    channel: str = "social",
    approval_state: str = "pending",
) -> int:
    async with repo.session.begin():
        return await repo.save_content_version(
            item_id=item_id,
            campaign_id=campaign_id,
            channel=channel,
            format=f"{channel}_post",
            publish_on=publish_on,
            version=version,
            title="",
            body=body,
            model="smollm2-135m@1",
            prompt_tokens=40,
            completion_tokens=25,
            compliance={"passed": True, "findings": []},
            approval_state=approval_state,
        )


def _metrics(item_id: str, channel: str, impressions: int, clicks: int, conversions: int, spend: int) -> ItemMetrics:
    return ItemMetrics(
        item_id=item_id,
        channel=channel,
        external_id=f"ext-{item_id}",
        impressions=impressions,
        clicks=clicks,
        conversions=conversions,
        spend_cents=spend,
    )


async def _count(session: AsyncSession, model: type, *where: object) -> int:
    return (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


# ---- campaigns --------------------------------------------------------------------------
async def test_create_campaign_twice_creates_one_campaign_and_tenant(db_session: AsyncSession) -> None:
    repo = CampaignRepository(db_session)
    tenant = _id("acme")
    campaign_id = await _campaign(repo, tenant)
    # A retried activity with different arguments must not overwrite the original.
    async with db_session.begin():
        again = await repo.create_campaign(campaign_id, tenant, "Other name", {}, f"wf-{campaign_id}")

    assert again.id == campaign_id
    assert again.name == "Spring launch"
    assert again.brief == BRIEF
    assert (again.status, again.phase) == ("running", "planning")
    assert await _count(db_session, Campaign, Campaign.id == campaign_id) == 1
    assert await _count(db_session, Tenant, Tenant.slug == tenant) == 1
    assert again.tenant_id == (await repo.ensure_tenant(tenant)).id


async def test_record_step_once_per_phase_and_tracks_current_phase(db_session: AsyncSession) -> None:
    repo = CampaignRepository(db_session)
    campaign_id = await _campaign(repo, _id("acme"))
    async with db_session.begin():
        assert await repo.record_step(campaign_id, "planning", "plan ready") is True
        assert await repo.record_step(campaign_id, "budgeting") is True
        assert await repo.record_step(campaign_id, "budgeting", "retried") is False

    steps = await repo.list_steps(campaign_id)
    assert [(s.phase, s.detail) for s in steps] == [("planning", "plan ready"), ("budgeting", "")]
    assert await _count(db_session, CampaignStep, CampaignStep.campaign_id == campaign_id) == 2
    campaign = await repo.get_campaign(campaign_id)
    assert campaign is not None and campaign.phase == "budgeting"


async def test_update_campaign_keeps_the_first_completion_time(db_session: AsyncSession) -> None:
    repo = CampaignRepository(db_session)
    campaign_id = await _campaign(repo, _id("acme"))
    plan = {"objective": "awareness", "channels": [{"channel": "social", "weight": 1.0}]}
    async with db_session.begin():
        first = await repo.update_campaign(
            campaign_id, status="completed", phase="completed", plan=plan, report_path="/r/1.md", completed=True
        )
    completed_at = first.completed_at
    assert completed_at is not None
    async with db_session.begin():
        second = await repo.update_campaign(campaign_id, status="completed", completed=True)

    assert second.completed_at == completed_at
    assert (second.status, second.phase, second.plan, second.report_path) == (
        "completed", "completed", plan, "/r/1.md",
    )
    with pytest.raises(ValueError):
        await repo.update_campaign(campaign_id, status="paused")
    with pytest.raises(RecordNotFound):
        async with db_session.begin():
            await repo.update_campaign("cmp_missing", phase="planning")


# ---- content ----------------------------------------------------------------------------
async def test_saving_the_same_version_twice_is_a_no_op(db_session: AsyncSession) -> None:
    repo = CampaignRepository(db_session)
    campaign_id = await _campaign(repo, _id("acme"))
    item_id = f"{campaign_id}:social:1"
    assert await _content(repo, campaign_id, item_id, body="First draft.") == 1
    assert await _content(repo, campaign_id, item_id, body="Retry body.", approval_state="blocked") == 1

    (item, version), = await repo.list_content(campaign_id)
    assert (item.current_version, item.approval_state) == (1, "pending")
    assert version.body == "First draft."
    assert await _count(db_session, ContentVersion, ContentVersion.item_id == item_id) == 1


async def test_list_content_returns_each_items_current_version_in_calendar_order(
    db_session: AsyncSession,
) -> None:
    repo = CampaignRepository(db_session)
    campaign_id = await _campaign(repo, _id("acme"))
    late, early = f"{campaign_id}:blog:1", f"{campaign_id}:social:1"
    await _content(repo, campaign_id, late, body="Blog v1", publish_on=date(2026, 3, 9), channel="blog")
    await _content(repo, campaign_id, early, body="Social v1", publish_on=date(2026, 3, 2))
    await _content(repo, campaign_id, early, version=2, body="Social v2", publish_on=date(2026, 3, 2))
    # A late retry of version 1 must not roll the item back.
    await _content(repo, campaign_id, early, version=1, body="Social v1", publish_on=date(2026, 3, 2))

    listed = await repo.list_content(campaign_id)
    assert [(item.id, item.current_version, version.body) for item, version in listed] == [
        (early, 2, "Social v2"),
        (late, 1, "Blog v1"),
    ]
    assert await repo.list_content(_id("cmp")) == []
    item = await repo.get_content_item(early)
    assert item is not None and item.channel == "social" and item.publish_on == date(2026, 3, 2)


async def test_record_review_applies_each_decision_once(db_session: AsyncSession) -> None:
    repo = CampaignRepository(db_session)
    campaign_id = await _campaign(repo, _id("acme"))
    item_id = f"{campaign_id}:email:1"
    await _content(repo, campaign_id, item_id, channel="email")
    await _content(repo, campaign_id, item_id, channel="email", version=2)

    async with db_session.begin():
        assert await repo.record_review(item_id, "rejected", "ana@example.com", "too pushy") is True
        assert await repo.record_review(item_id, "rejected", "ana@example.com", "too pushy") is False
        item = await repo.get_content_item(item_id)
        assert item is not None and item.approval_state == "rejected"

    async with db_session.begin():
        assert await repo.record_review(item_id, "approved", "bo@example.com") is True
    with pytest.raises(ValueError):
        await repo.record_review(item_id, "maybe", "bo@example.com")
    with pytest.raises(RecordNotFound):
        async with db_session.begin():
            await repo.record_review(f"{campaign_id}:email:404", "approved", "bo@example.com")

    reviews = await repo.list_reviews(item_id)
    assert [(r.version, r.decision, r.reviewer) for r in reviews] == [
        (2, "rejected", "ana@example.com"),
        (2, "approved", "bo@example.com"),
    ]
    item = await repo.get_content_item(item_id)
    assert item is not None and item.approval_state == "approved"
    assert await _count(db_session, ContentReview, ContentReview.item_id == item_id) == 2


async def test_mark_published_keeps_the_first_publication_time(db_session: AsyncSession) -> None:
    repo = CampaignRepository(db_session)
    campaign_id = await _campaign(repo, _id("acme"))
    item_id = f"{campaign_id}:blog:1"
    await _content(repo, campaign_id, item_id, channel="blog", approval_state="approved")

    async with db_session.begin():
        await repo.mark_published(item_id, "post-17")
        first = await repo.get_content_item(item_id)
        assert first is not None and first.external_id == "post-17" and first.published_at is not None
        published_at = first.published_at
    async with db_session.begin():
        await repo.mark_published(item_id, "post-17")
    with pytest.raises(RecordNotFound):
        async with db_session.begin():
            await repo.mark_published(f"{campaign_id}:blog:404", "post-18")
    again = await repo.get_content_item(item_id)
    assert again is not None and again.published_at == published_at


# ---- metrics ----------------------------------------------------------------------------
async def test_save_metrics_upserts_one_row_per_item_and_round(db_session: AsyncSession) -> None:
    repo = CampaignRepository(db_session)
    campaign_id = await _campaign(repo, _id("acme"))
    item_id = f"{campaign_id}:social:1"
    await _content(repo, campaign_id, item_id)

    async with db_session.begin():
        assert await repo.save_metrics(campaign_id, 1, [_metrics(item_id, "social", 100, 5, 1, 250)]) == 1
        await repo.save_metrics(campaign_id, 1, [_metrics(item_id, "social", 120, 6, 1, 300)])
        await repo.save_metrics(campaign_id, 2, [_metrics(item_id, "social", 300, 9, 2, 700)])
        assert await repo.save_metrics(campaign_id, 3, []) == 0

    rows = await repo.campaign_metrics(campaign_id)
    assert [(m.round, m.impressions, m.clicks, m.conversions, m.spend_cents) for m in rows] == [
        (1, 120, 6, 1, 300),
        (2, 300, 9, 2, 700),
    ]


async def test_negative_metrics_are_rejected_by_the_database(db_session: AsyncSession) -> None:
    repo = CampaignRepository(db_session)
    campaign_id = await _campaign(repo, _id("acme"))
    item_id = f"{campaign_id}:social:1"
    await _content(repo, campaign_id, item_id)

    with pytest.raises(IntegrityError, match="ck_channel_metrics_metrics_non_negative"):
        async with db_session.begin():
            await repo.save_metrics(campaign_id, 1, [_metrics(item_id, "social", 10, -1, 0, 0)])
    with pytest.raises(IntegrityError, match="ck_campaigns_budget_non_negative"):
        async with db_session.begin():
            await repo.update_campaign(campaign_id, budget={"total_budget_cents": -5, "channels": []})
    with pytest.raises(IntegrityError, match="ck_content_items_approval_state_valid"):
        async with db_session.begin():
            await db_session.execute(
                text("UPDATE content_items SET approval_state = 'published' WHERE id = :id"), {"id": item_id}
            )
    assert await _count(db_session, ChannelMetric, ChannelMetric.campaign_id == campaign_id) == 0


async def test_channel_history_sums_latest_round_per_item_and_excludes_a_campaign(
    db_session: AsyncSession,
) -> None:
    repo = CampaignRepository(db_session)
    tenant, other_tenant = _id("acme"), _id("globex")
    past_a = await _campaign(repo, tenant)
    past_b = await _campaign(repo, tenant)
    current = await _campaign(repo, tenant)
    foreign = await _campaign(repo, other_tenant)

    async def publish(campaign_id: str, channel: str, rounds: list[tuple[int, int, int, int]]) -> None:
        item_id = f"{campaign_id}:{channel}:1"
        await _content(repo, campaign_id, item_id, channel=channel)
        async with db_session.begin():
            for n, (impressions, clicks, conversions, spend) in enumerate(rounds, start=1):
                await repo.save_metrics(
                    campaign_id, n, [_metrics(item_id, channel, impressions, clicks, conversions, spend)]
                )

    # Cumulative rounds: only the last one of each item counts.
    await publish(past_a, "social", [(100, 10, 1, 100), (400, 30, 3, 300)])
    await publish(past_a, "email", [(50, 5, 2, 0)])
    await publish(past_b, "social", [(1000, 20, 4, 900), (2000, 50, 6, 1500), (2500, 60, 7, 2000)])
    await publish(current, "social", [(99_999, 999, 99, 99_999)])
    await publish(foreign, "blog", [(7, 7, 7, 7)])

    history = await repo.channel_history(tenant, exclude_campaign_id=current)
    assert history.tenant == tenant
    assert history.channels == [
        ChannelHistory(channel="email", campaigns=1, spend_cents=0, impressions=50, clicks=5, conversions=2),
        ChannelHistory(channel="social", campaigns=2, spend_cents=2300, impressions=2900, clicks=90, conversions=10),
    ]
    # Per past campaign (the planner compares audiences): its audience and latest totals.
    assert {(c.campaign_id, c.audience, c.spend_cents, c.conversions) for c in history.campaigns} == {
        (past_a, BRIEF["audience"], 300, 5),
        (past_b, BRIEF["audience"], 2000, 7),
    }
    with_current = await repo.channel_history(tenant)
    social = next(c for c in with_current.channels if c.channel == "social")
    assert (social.campaigns, social.impressions) == (3, 2900 + 99_999)
    assert (await repo.channel_history(_id("nobody"))).channels == []


# ---- audit ------------------------------------------------------------------------------
async def test_audit_events_are_appended_and_listed_by_subject(db_session: AsyncSession) -> None:
    repo = CampaignRepository(db_session)
    subject = _id("cmp")
    async with db_session.begin():
        tenant = await repo.ensure_tenant(_id("acme"))
        first = await repo.add_audit_event(
            actor="ana@example.com", action="campaign.created", subject_type="campaign", subject_id=subject,
            tenant_id=tenant.id, detail={"channels": ["social"]},
        )
        second = await repo.add_audit_event(
            actor="system", action="campaign.completed", subject_type="campaign", subject_id=subject
        )
    assert second > first
    events = await repo.list_audit_events("campaign", subject)
    assert [(e.action, e.tenant_id, e.detail) for e in events] == [
        ("campaign.created", tenant.id, {"channels": ["social"]}),
        ("campaign.completed", None, {}),
    ]


# ---- the rollback fixture ---------------------------------------------------------------
_COMMITTED_SLUG = f"rollback-probe-{uuid.uuid4().hex[:8]}"


async def test_rollback_fixture_step1_commit_inside_a_test(db_session: AsyncSession) -> None:
    repo = CampaignRepository(db_session)
    async with db_session.begin():
        await repo.ensure_tenant(_COMMITTED_SLUG)
    assert await _count(db_session, Tenant, Tenant.slug == _COMMITTED_SLUG) == 1


async def test_rollback_fixture_step2_leaves_no_rows_behind(db_engine: AsyncEngine) -> None:
    # Runs after step 1 (file order); reads through a separate connection.
    async with db_engine.connect() as conn:
        found = await conn.execute(text("SELECT count(*) FROM tenants WHERE slug = :s"), {"s": _COMMITTED_SLUG})
        assert found.scalar_one() == 0


async def test_earlier_content_embeddings_skip_drafts_without_one_and_the_same_message(db_session: AsyncSession) -> None:
    repo = CampaignRepository(db_session)
    tenant = _id("tenant")
    earlier, current = await _campaign(repo, tenant), await _campaign(repo, tenant)
    other = await _campaign(repo, _id("tenant"))
    await _content(repo, earlier, f"{earlier}:social:1")  # a legacy draft: no embedding stored
    async with repo.session.begin():
        for item_id, message_id, vector in (
            (f"{earlier}:blog:1", "m-old", [1.0, 0.0]),
            (f"{current}:email:1", "m-now", [0.0, 1.0]),
        ):
            await repo.save_content_version(
                item_id=item_id, campaign_id=item_id.split(":")[0], channel="blog", format="blog_post",
                publish_on=date(2026, 3, 2), version=1, title="t", body="b", model="m", prompt_tokens=1,
                completion_tokens=1, compliance={}, approval_state="pending",
                generation={"message_id": message_id}, embedding=vector,
            )
    found = await repo.earlier_content_embeddings(current, exclude_item=f"{current}:social:9", exclude_message="m-now")
    assert found == [(f"{earlier}:blog:1", [1.0, 0.0])]
    # Another tenant's content is never compared.
    assert await repo.earlier_content_embeddings(other, exclude_item="x") == []
