"""GET /v1/audit's query: tenant-scoped, filtered, newest first, keyset-paged."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from agency.db.models import Tenant
from agency.security.audit import append_audit_event
from agency.security.audit_query import list_audit_events

pytestmark = pytest.mark.integration


async def _tenant(session, slug: str) -> uuid.UUID:
    tenant = Tenant(id=uuid.uuid4(), slug=slug, name=slug)
    session.add(tenant)
    await session.flush()
    return tenant.id


async def test_filters_prefixes_pages_and_never_crosses_tenants(db_session):
    async with db_session.begin():
        mine = await _tenant(db_session, f"q-{uuid.uuid4().hex[:8]}")
        theirs = await _tenant(db_session, f"q-{uuid.uuid4().hex[:8]}")
        for n, action in enumerate(["campaigns.create", "campaigns.pause", "campaignsx.create", "api_keys.create", "campaigns.create"]):
            await append_audit_event(
                db_session, actor="user:a" if n % 2 == 0 else "user:b", tenant_id=mine, action=action,
                subject_type="campaign", subject_id=f"cmp_{n}", outcome="ok" if n != 1 else "denied",
            )
        await append_audit_event(
            db_session, actor="user:z", tenant_id=theirs, action="campaigns.create", subject_type="campaign", subject_id="cmp_other",
        )

    everything = await list_audit_events(db_session, tenant_id=mine, limit=200)
    assert [e.subject_id for e in everything.events] == ["cmp_4", "cmp_3", "cmp_2", "cmp_1", "cmp_0"]  # newest first
    assert everything.next_before_id is None

    prefixed = await list_audit_events(db_session, tenant_id=mine, action="campaigns.*")
    assert {e.action for e in prefixed.events} == {"campaigns.create", "campaigns.pause"}  # not campaignsx.*
    assert [e.subject_id for e in (await list_audit_events(db_session, tenant_id=mine, outcome="denied")).events] == ["cmp_1"]
    assert {e.actor for e in (await list_audit_events(db_session, tenant_id=mine, actor="user:b")).events} == {"user:b"}
    assert (await list_audit_events(db_session, tenant_id=mine, subject_id="cmp_other")).events == []

    first = await list_audit_events(db_session, tenant_id=mine, limit=2)
    second = await list_audit_events(db_session, tenant_id=mine, limit=2, before_id=first.next_before_id)
    third = await list_audit_events(db_session, tenant_id=mine, limit=2, before_id=second.next_before_id)
    assert [e.subject_id for page in (first, second, third) for e in page.events] == ["cmp_4", "cmp_3", "cmp_2", "cmp_1", "cmp_0"]
    assert third.next_before_id is None

    wildcard = await list_audit_events(db_session, tenant_id=mine, action="campaigns_%.*")
    assert wildcard.events == []  # LIKE wildcards in the filter are literal


async def test_time_window_subject_type_and_clamped_page_size(db_session):
    start = datetime(2030, 5, 1, 12, 0, tzinfo=timezone.utc)
    async with db_session.begin():
        tenant = await _tenant(db_session, f"q-{uuid.uuid4().hex[:8]}")
        for hour in range(4):
            await append_audit_event(
                db_session, actor="agent:analyst", tenant_id=tenant, action="metrics.collected",
                subject_type="campaign" if hour % 2 == 0 else "content_item", subject_id=f"s{hour}",
                now=start + timedelta(hours=hour),
            )

    # since is inclusive, until exclusive: consecutive windows neither overlap nor leave gaps.
    window = await list_audit_events(db_session, tenant_id=tenant, since=start + timedelta(hours=1), until=start + timedelta(hours=3))
    assert [e.subject_id for e in window.events] == ["s2", "s1"]
    items = await list_audit_events(db_session, tenant_id=tenant, subject_type="content_item")
    assert [e.subject_id for e in items.events] == ["s3", "s1"]

    smallest = await list_audit_events(db_session, tenant_id=tenant, limit=0)
    assert [e.subject_id for e in smallest.events] == ["s3"] and smallest.next_before_id == smallest.events[0].id
    assert len((await list_audit_events(db_session, tenant_id=tenant, limit=10_000)).events) == 4
