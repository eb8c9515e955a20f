"""GET /v1/audit's query: tenant-scoped, filtered, newest first, keyset-paged."""

from __future__ import annotations

import uuid

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
