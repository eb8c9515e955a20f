"""Agent actions the workflows perform land in the hash-chained audit log, once per action,
under the campaign's tenant, even when Temporal retries the activity after it committed."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.campaign_store import CampaignStoreActivities
from activities.planning import PlanningActivities
from activities.reporting import ReportActivities
from agency.contracts import (
    BudgetRequest,
    CampaignBrief,
    CampaignHistory,
    ComplianceResult,
    ContentDraft,
    FinishCampaignRequest,
    ItemMetrics,
    MetricsSnapshot,
    PlanRequest,
    PublishedRecord,
    ReportRequest,
    ReviewerNotice,
    ReviewRecord,
    SaveContentRequest,
)
from agency.db.models import AuditEvent, Tenant
from agency.db.repository import CampaignRepository
from agency.security.audit import verify_audit_log
from agency.serialization import to_json

pytestmark = pytest.mark.integration


async def _events(sessions, campaign_id: str) -> list[AuditEvent]:
    async with sessions() as session:
        rows = await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.subject_id.in_([campaign_id, f"{campaign_id}:social:1"]))
            .order_by(AuditEvent.id)
        )
        return list(rows)


async def test_retried_agent_actions_are_audited_once_under_the_campaign_tenant(db_engine: AsyncEngine):
    sessions = async_sessionmaker(db_engine, expire_on_commit=False)
    tenant, campaign_id = f"agents-{uuid.uuid4().hex[:8]}", f"cmp_{uuid.uuid4().hex[:20]}"
    item_id = f"{campaign_id}:social:1"
    async with sessions() as session, session.begin():
        await CampaignRepository(session).create_campaign(
            campaign_id, tenant, "launch", {"tenant": tenant}, f"{tenant}/{campaign_id}"
        )
        tenant_id = await session.scalar(select(Tenant.id).where(Tenant.slug == tenant))

    store = CampaignStoreActivities(sessions)
    env = ActivityEnvironment()
    draft = ContentDraft(
        item_id=item_id, campaign_id=campaign_id, channel="social", format="social_post", title="",
        body="Dry feet, longer trails.", model="m@1", prompt_tokens=10, completion_tokens=8,
    )
    save = SaveContentRequest(
        draft=draft,
        compliance=ComplianceResult(item_id=item_id, passed=True, findings=[], claims_found=[], sanitized_title="", sanitized_body=draft.body),
        approval_state="pending",
        publish_on="2027-01-04",
    )
    metrics = MetricsSnapshot(campaign_id=campaign_id, round=1, items=[
        ItemMetrics(item_id=item_id, channel="social", external_id="x1", impressions=10, clicks=1, conversions=0, spend_cents=100)
    ])
    for _attempt in range(2):  # the second run is Temporal's retry after a lost completion
        await env.run(store.save_content, save)
        await env.run(store.mark_published, PublishedRecord(campaign_id=campaign_id, item_id=item_id, external_id="x1"))
        await env.run(store.save_metrics, metrics)
    # A new version or round is a new action.
    await env.run(store.save_content, SaveContentRequest(**{**save.__dict__, "draft": ContentDraft(**{**draft.__dict__, "attempt": 2})}))
    await env.run(store.save_metrics, MetricsSnapshot(campaign_id=campaign_id, round=2, items=metrics.items))

    events = await _events(sessions, campaign_id)
    assert [(e.actor, e.action, e.detail.get("version") or e.detail.get("round")) for e in events] == [
        ("agent:content", "content.drafted", 1),
        ("agent:publisher", "content.published", None),
        ("agent:analyst", "metrics.collected", 1),
        ("agent:content", "content.drafted", 2),
        ("agent:analyst", "metrics.collected", 2),
    ]
    assert {e.tenant_id for e in events} == {tenant_id}
    async with sessions() as session:
        assert (await verify_audit_log(session)).ok


async def _new_campaign(sessions, brief: CampaignBrief | None = None) -> tuple[str, uuid.UUID, CampaignBrief]:
    tenant, campaign_id = f"agents-{uuid.uuid4().hex[:8]}", f"cmp_{uuid.uuid4().hex[:20]}"
    brief = brief or CampaignBrief(
        tenant=tenant, product="Trail shoes", audience="hikers", goals=["Grow online sales"],
        channels=["social", "email"], total_budget_cents=200_000, start_date="2027-01-04", end_date="2027-01-31",
    )
    async with sessions() as session, session.begin():
        await CampaignRepository(session).create_campaign(campaign_id, tenant, "launch", to_json(brief), f"{tenant}/{campaign_id}")
        tenant_id = await session.scalar(select(Tenant.id).where(Tenant.slug == tenant))
    return campaign_id, tenant_id, brief


def _drafted(campaign_id: str, item_id: str) -> SaveContentRequest:
    draft = ContentDraft(
        item_id=item_id, campaign_id=campaign_id, channel="social", format="social_post", title="",
        body="Dry feet, longer trails.", model="m@1", prompt_tokens=10, completion_tokens=8,
    )
    return SaveContentRequest(
        draft=draft,
        compliance=ComplianceResult(item_id=item_id, passed=False, findings=["unverified claim"], claims_found=[], sanitized_title="", sanitized_body=draft.body),
        approval_state="blocked",
        publish_on="2027-01-04",
    )


async def test_planning_review_notice_finish_and_report_are_audited_once(db_engine: AsyncEngine, tmp_path: Path):
    sessions = async_sessionmaker(db_engine, expire_on_commit=False)
    campaign_id, tenant_id, brief = await _new_campaign(sessions)
    item_id = f"{campaign_id}:social:1"
    planning, store = PlanningActivities(sessions), CampaignStoreActivities(sessions)
    reports = ReportActivities(sessions, tmp_path)
    env = ActivityEnvironment()
    for _attempt in range(2):  # each activity again, as Temporal's retry after a lost completion
        plan = await env.run(planning.plan_campaign, PlanRequest(campaign_id, brief, CampaignHistory(brief.tenant)))
        await env.run(planning.allocate_budget, BudgetRequest(campaign_id, brief.total_budget_cents, plan))
        await env.run(store.save_content, _drafted(campaign_id, item_id))
        await env.run(store.notify_reviewers, ReviewerNotice(campaign_id, "approval_requested", [item_id]))
        await env.run(store.record_review, ReviewRecord(campaign_id, item_id, 1, "rejected", "user:alice", "no"))
        await env.run(reports.build_report, ReportRequest(campaign_id, "completed"))
        await env.run(store.finish_campaign, FinishCampaignRequest(campaign_id, "completed"))

    events = await _events(sessions, campaign_id)
    assert [(e.actor, e.action, e.subject_type) for e in events] == [
        ("agent:planner", "plan.created", "campaign"),
        ("agent:budget", "budget.allocated", "campaign"),
        ("agent:content", "content.drafted", "content_item"),
        ("system", "approval.approval_requested", "campaign"),
        ("user:alice", "content.rejected", "content_item"),
        ("agent:analyst", "report.built", "campaign"),
        ("system", "campaign.completed", "campaign"),
    ]
    assert {e.tenant_id for e in events} == {tenant_id}
    assert events[2].detail["compliance_passed"] is False and events[2].detail["version"] == 1
    async with sessions() as session:
        assert (await verify_audit_log(session)).ok


async def test_an_attempt_running_beside_its_retry_adds_one_record(db_engine: AsyncEngine):
    # A timed-out attempt can still be running when Temporal starts the retry.
    sessions = async_sessionmaker(db_engine, expire_on_commit=False)
    campaign_id, tenant_id, _brief = await _new_campaign(sessions)
    store = CampaignStoreActivities(sessions)
    notice = ReviewerNotice(campaign_id, "reminder", [f"{campaign_id}:social:1"])
    await asyncio.gather(*(ActivityEnvironment().run(store.notify_reviewers, notice) for _ in range(4)))

    events = await _events(sessions, campaign_id)
    assert [(e.actor, e.action, e.tenant_id) for e in events] == [("system", "approval.reminder", tenant_id)]
