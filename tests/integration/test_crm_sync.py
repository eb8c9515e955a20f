"""Two-way CRM sync for real: CrmSyncWorkflow on the Temporal dev server, its activities on
PostgreSQL, the CRM being the sandbox's HubSpot face over HTTP (a sandbox process per test, so
the records and request counts it reports are this test's alone), the API in-process.

Tests that check "edits made between two rounds" run the workflow with a long interval and
drive rounds with signed webhooks (``crm_changed``), so nothing races the edits; the resilience
tests use a 0.2 s interval.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.crm_sync import CrmSyncActivities, crm_factory
from agency.db.models_contacts import Contact
from agency.db.models_sync import CrmSyncDeletion, SyncConflict
from agency.db.repository import CampaignRepository
from agency.db.session import create_engine, session_factory
from agency.integrations.crm import SYNC_KEY_PROPERTY, CrmRecord, HubSpotCrm, webhook_signature
from agency.integrations.http import bearer
from agency.integrations.reliability import CircuitBreaker, RetryPolicy
from agency.settings import Settings
from api_flow import record_workflow_history
from agency.sync.contracts import CrmSyncInput, CrmSyncQuery, CrmSyncStatus, crm_sync_workflow_id
from api.contacts_sync.service import crm_sync_input, ensure_crm_sync
from tests.integration.conftest import SANDBOX_TOKEN, api_client, free_port, stack_settings, start_sandbox
from workflows.crm_sync import CrmSyncWorkflow

pytestmark = pytest.mark.integration

WEBHOOK_SECRET = "hubspot-app-secret-for-tests"
PROPS = ["email", "firstname", "lastname", "phone", "jobtitle", "lifecyclestage", "agency_notes", SYNC_KEY_PROPERTY]


@dataclass
class SyncStack:
    tenant: str
    settings: Settings
    client: Client
    sessions: async_sessionmaker[AsyncSession]
    crm: HubSpotCrm  # the CRM as its own users see it (edits made "in HubSpot")
    admin: httpx.Client  # the sandbox's control routes
    sandbox_url: str
    workers: Callable[[], AsyncExitStack]

    @property
    def workflow_id(self) -> str:
        return crm_sync_workflow_id(self.tenant)

    def handle(self) -> WorkflowHandle:
        return self.client.get_workflow_handle(self.workflow_id)


@asynccontextmanager
async def sync_stack(temporal_env: WorkflowEnvironment, database_url: str, tmp_path: Path) -> AsyncIterator[SyncStack]:
    port = free_port()
    sandbox = start_sandbox(tmp_path / "sandbox.sqlite", port, tmp_path / "sandbox.log")
    sandbox_url = f"http://127.0.0.1:{port}"
    suffix = uuid.uuid4().hex[:8]
    settings = stack_settings(
        database_url=database_url, temporal=temporal_env, triton_url="127.0.0.1:9", sandbox_url=sandbox_url,
        data_dir=tmp_path / "data", queue_suffix=f"crm-{suffix}", integration_timeout_s=5,
    )
    tenant = f"crm-{suffix}"
    engine = create_engine(database_url, pool_size=5, max_overflow=5)
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        await CampaignRepository(session).ensure_tenant(tenant)
    client = temporal_env.client

    def workers() -> AsyncExitStack:
        """The workflow worker and the sync activities' worker (a new pair each call)."""
        stack = AsyncExitStack()

        async def enter() -> None:
            activities = CrmSyncActivities(sessions, crm_factory(settings, sessions))
            stack.push_async_callback(activities.close)
            for worker in (
                Worker(client, task_queue=settings.queue_orchestration, workflows=[CrmSyncWorkflow]),
                Worker(client, task_queue=settings.queue_integrations, activities=activities.all()),
            ):
                await stack.enter_async_context(worker)

        stack.enter = enter  # type: ignore[attr-defined]
        return stack

    crm = HubSpotCrm(f"{sandbox_url}/hubspot", bearer(SANDBOX_TOKEN), timeout_s=5,
                     retry=RetryPolicy(max_attempts=6, base_delay_s=0.05), breaker=CircuitBreaker("hubspot-test"))
    admin = httpx.Client(base_url=sandbox_url, headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}, timeout=10)
    try:
        yield SyncStack(tenant, settings, client, sessions, crm, admin, sandbox_url, workers)
    finally:
        try:
            await client.get_workflow_handle(crm_sync_workflow_id(tenant)).terminate("test over")
        except Exception:  # noqa: BLE001 - a test may not have started it
            pass
        await crm.aclose()
        admin.close()
        await engine.dispose()
        sandbox.terminate()
        try:
            sandbox.wait(10)
        except Exception:  # noqa: BLE001
            sandbox.kill()


@asynccontextmanager
async def running(stack: SyncStack) -> AsyncIterator[None]:
    workers = stack.workers()
    async with workers:
        await workers.enter()  # type: ignore[attr-defined]
        yield


# ---- helpers ---------------------------------------------------------------------------------
async def eventually(probe, what: str, timeout_s: float = 60.0):
    """Poll ``probe`` until it returns something truthy (the bound only stops a hung test)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def status(stack: SyncStack) -> CrmSyncStatus:
    return await stack.handle().query(CrmSyncQuery.STATUS, result_type=CrmSyncStatus)


async def round_done_after(stack: SyncStack, rounds: int) -> CrmSyncStatus:
    seen: list[CrmSyncStatus] = []

    async def probe():
        current = await status(stack)
        seen[:] = [current]
        return current if current.rounds > rounds and current.phase == "waiting" else None

    try:
        return await eventually(probe, f"a round after round {rounds}")
    except AssertionError as err:
        raise AssertionError(f"{err}; last status: {seen}") from None


def signed_webhook(tenant: str, events: list[dict]) -> tuple[str, bytes, dict[str, str]]:
    import json

    url = f"http://agency.test/v1/webhooks/hubspot/{tenant}"
    body = json.dumps(events).encode()
    timestamp = str(int(time.time() * 1000))
    signature = webhook_signature(WEBHOOK_SECRET, method="POST", uri=url, body=body, timestamp=timestamp)
    return url, body, {"X-HubSpot-Request-Timestamp": timestamp, "X-HubSpot-Signature-v3": signature,
                       "Content-Type": "application/json"}


def change_event(object_id: str, prop: str = "email") -> dict:
    return {"eventId": int(time.time() * 1000), "subscriptionId": 1, "portalId": 62515, "appId": 1,
            "occurredAt": int(time.time() * 1000), "subscriptionType": "contact.propertyChange",
            "attemptNumber": 0, "objectId": int(object_id), "propertyName": prop, "propertyValue": "x",
            "changeSource": "CRM"}


async def nudge(stack: SyncStack, api: httpx.AsyncClient, crm_id: str) -> CrmSyncStatus:
    """A signed webhook delivery: the sync runs a round now; the status after that round."""
    before = (await status(stack)).rounds
    url, body, headers = signed_webhook(stack.tenant, [change_event(crm_id)])
    response = await api.post(url, content=body, headers={**headers, "Authorization": ""})
    assert response.status_code == 204, response.text
    return await round_done_after(stack, before)


async def add_contact(stack: SyncStack, **values) -> uuid.UUID:
    async with stack.sessions() as session, session.begin():
        tenant_id = (await CampaignRepository(session).ensure_tenant(stack.tenant)).id
        now = datetime.now(UTC).isoformat()
        notes = values.pop("notes", None)
        row = Contact(tenant_id=tenant_id, properties={"notes": notes} if notes else {},
                      field_modified_at={k: now for k in values}, source="api", **values)
        session.add(row)
        await session.flush()
        return row.id


async def edit_ours(stack: SyncStack, contact_id: uuid.UUID, *, at: datetime | None = None, **values) -> None:
    """Edit our copy as the app does: the value, its per-field edit time, the version."""
    at = at or datetime.now(UTC)
    async with stack.sessions() as session, session.begin():
        row = await session.get(Contact, contact_id, with_for_update=True)
        for name, value in values.items():
            if name == "notes":
                row.properties = {**row.properties, "notes": value}
            else:
                setattr(row, name, value)
        row.field_modified_at = {**row.field_modified_at, **{k: at.isoformat() for k in values}}
        row.version += 1


async def ours(stack: SyncStack, contact_id: uuid.UUID) -> Contact:
    async with stack.sessions() as session:
        return await session.get(Contact, contact_id)


async def theirs(stack: SyncStack, crm_id: str) -> CrmRecord | None:
    return await stack.crm.get("contacts", crm_id, properties=PROPS)


async def all_crm_contacts(stack: SyncStack, *, archived: bool = False) -> list[CrmRecord]:
    records, after = [], None
    while True:
        page = await stack.crm.list_page("contacts", properties=PROPS, after=after, limit=100, archived=archived)
        records += page.records
        if page.next_after is None:
            return records
        after = page.next_after


async def start_via_api(api: httpx.AsyncClient, **body) -> None:
    response = await api.post("/v1/sync/crm", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["started"] is True


async def _equals(value, expected) -> bool:
    return (await value) == expected


# ---- tests -----------------------------------------------------------------------------------
async def test_concurrent_edits_follow_each_fields_policy(temporal_env, migrated_database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENCY_CRM_SYNC_HUBSPOT_WEBHOOK_SECRET", WEBHOOK_SECRET)
    async with sync_stack(temporal_env, migrated_database_url, tmp_path) as stack, running(stack), \
            api_client(stack.settings, tenant=stack.tenant) as api:
        ann = await add_contact(stack, email="ann@acme.test", first_name="Ann", last_name="Lind", job_title="CMO",
                                lifecycle_stage="lead", notes="met at the fair; prefers email")
        bo = await add_contact(stack, email="bo@acme.test", first_name="Bo", phone="+4930111111", lifecycle_stage="lead")
        await start_via_api(api, interval_s=3600)
        await round_done_after(stack, 0)
        ann_crm, bo_crm = (await ours(stack, ann)).crm_id, (await ours(stack, bo)).crm_id
        assert ann_crm and bo_crm
        first = await theirs(stack, ann_crm)
        assert first.properties["email"] == "ann@acme.test" and first.properties["lifecyclestage"] == "lead"
        assert not first.properties.get("agency_notes")  # notes: never pushed

        # Between two rounds, both sides edit. Bo's email: ours first, the CRM later -> the CRM's wins.
        await edit_ours(stack, bo, email="bo@ours.test", at=datetime.now(UTC) - timedelta(minutes=5))
        await stack.crm.update("contacts", bo_crm, {"email": "bo@crm.test", "phone": "+4930222222"})
        # Ann: the CRM first, ours later -> our email wins; lifecycle stage: the CRM overwrites
        # though ours is newer; phone: ours is empty, so the CRM's fills it; last name: only the
        # CRM edited it; notes: ours only, never pushed.
        await stack.crm.update("contacts", ann_crm, {"email": "ann@crm.test", "lifecyclestage": "opportunity",
                                                     "phone": "+4930333333", "lastname": "Lindqvist"})
        await asyncio.sleep(0.01)
        await edit_ours(stack, ann, email="ann@ours.test", lifecycle_stage="customer", notes="renewal in May")
        await nudge(stack, api, ann_crm)

        ann_row, ann_there = await ours(stack, ann), await theirs(stack, ann_crm)
        assert (ann_row.email, ann_there.properties["email"]) == ("ann@ours.test", "ann@ours.test")
        assert (ann_row.lifecycle_stage, ann_there.properties["lifecyclestage"]) == ("opportunity", "opportunity")
        assert (ann_row.phone, ann_there.properties["phone"]) == ("+4930333333", "+4930333333")
        assert (ann_row.last_name, ann_there.properties["lastname"]) == ("Lindqvist", "Lindqvist")
        assert ann_row.properties["notes"] == "renewal in May" and not ann_there.properties.get("agency_notes")
        bo_row, bo_there = await ours(stack, bo), await theirs(stack, bo_crm)
        assert (bo_row.email, bo_there.properties["email"]) == ("bo@crm.test", "bo@crm.test")
        # Both phones were set: only_if_empty writes over neither.
        assert (bo_row.phone, bo_there.properties["phone"]) == ("+4930111111", "+4930222222")

        # Another round changes nothing on either side (the snapshot says both agree).
        versions = (ann_row.version, bo_row.version)
        updated = (ann_there.updated_at, bo_there.updated_at)
        await nudge(stack, api, ann_crm)
        assert ((await ours(stack, ann)).version, (await ours(stack, bo)).version) == versions
        assert ((await theirs(stack, ann_crm)).updated_at, (await theirs(stack, bo_crm)).updated_at) == updated
        assert len(await all_crm_contacts(stack)) == 2

        # A delivery whose signature does not verify is refused and runs no round.
        url, body, headers = signed_webhook(stack.tenant, [change_event(ann_crm)])
        refused = await api.post(url, content=body + b" ", headers={**headers, "Authorization": ""})
        assert refused.status_code == 401


async def test_review_conflict_waits_for_a_person_then_lands_on_both_sides(
    temporal_env, migrated_database_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("AGENCY_CRM_SYNC_HUBSPOT_WEBHOOK_SECRET", WEBHOOK_SECRET)
    async with sync_stack(temporal_env, migrated_database_url, tmp_path) as stack, running(stack), \
            api_client(stack.settings, tenant=stack.tenant) as api:
        cy = await add_contact(stack, email="cy@acme.test", first_name="Cy", job_title="CMO")
        await start_via_api(api, interval_s=3600)
        await round_done_after(stack, 0)
        crm_id = (await ours(stack, cy)).crm_id

        await stack.crm.update("contacts", crm_id, {"jobtitle": "Head of Growth"})
        await edit_ours(stack, cy, job_title="VP Marketing")
        after = await nudge(stack, api, crm_id)
        assert after.pending_conflicts == 1
        shown = (await api.get("/v1/sync/crm")).json()
        assert (shown["running"], shown["pending_conflicts"], shown["rounds"]) == (True, 1, after.rounds)

        listed = (await api.get("/v1/sync/conflicts")).json()["conflicts"]
        assert [(c["field"], c["ours"], c["theirs"], c["local_id"]) for c in listed] == [
            ("job_title", "VP Marketing", "Head of Growth", str(cy))]
        # Waiting: neither side was written, and another round keeps it one open conflict.
        await nudge(stack, api, crm_id)
        assert (await ours(stack, cy)).job_title == "VP Marketing"
        assert (await theirs(stack, crm_id)).properties["jobtitle"] == "Head of Growth"
        assert len((await api.get("/v1/sync/conflicts")).json()["conflicts"]) == 1

        unknown = await api.post(f"/v1/sync/conflicts/{uuid.uuid4()}", json={"resolution": "ours"})
        assert unknown.status_code == 404
        response = await api.post(f"/v1/sync/conflicts/{listed[0]['conflict_id']}",
                                  json={"resolution": "value", "value": "Chief Marketing Officer"})
        assert response.status_code == 202, response.text

        async def resolved():
            return not (await api.get("/v1/sync/conflicts")).json()["conflicts"]

        await eventually(resolved, "the conflict to be resolved")
        assert (await ours(stack, cy)).job_title == "Chief Marketing Officer"
        assert (await theirs(stack, crm_id)).properties["jobtitle"] == "Chief Marketing Officer"
        async with stack.sessions() as session:
            conflict = await session.get(SyncConflict, uuid.UUID(listed[0]["conflict_id"]))
            assert (conflict.status, conflict.resolution, conflict.resolved_value) == (
                "resolved", "value", "Chief Marketing Officer")
            assert conflict.resolved_by.startswith("user:")
        # Settled for good: the next round reopens nothing.
        assert (await nudge(stack, api, crm_id)).pending_conflicts == 0
        again = await api.post(f"/v1/sync/conflicts/{listed[0]['conflict_id']}", json={"resolution": "ours"})
        assert again.status_code == 409
        # Webhook nudges, a conflict held for review, its resolution by signal: for the replay tests.
        await record_workflow_history(stack.client, stack.workflow_id, "crm_sync_review_conflict")


async def test_contact_archived_in_the_crm_is_tombstoned_and_not_recreated(
    temporal_env, migrated_database_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("AGENCY_CRM_SYNC_HUBSPOT_WEBHOOK_SECRET", WEBHOOK_SECRET)
    async with sync_stack(temporal_env, migrated_database_url, tmp_path) as stack, running(stack), \
            api_client(stack.settings, tenant=stack.tenant) as api:
        dee = await add_contact(stack, email="dee@acme.test", first_name="Dee")
        eve = await add_contact(stack, email="eve@acme.test", first_name="Eve")
        await start_via_api(api, interval_s=3600)
        await round_done_after(stack, 0)
        dee_crm = (await ours(stack, dee)).crm_id

        await stack.crm.archive("contacts", dee_crm)
        await nudge(stack, api, dee_crm)
        row = await ours(stack, dee)
        assert row.deleted_at is not None and row.crm_id == dee_crm
        await nudge(stack, api, dee_crm)  # and again: still handled once, nothing re-created
        live = await all_crm_contacts(stack)
        assert sorted(r.properties["email"] for r in live) == ["eve@acme.test"]
        assert [r.id for r in await all_crm_contacts(stack, archived=True)] == [dee_crm]
        async with stack.sessions() as session:
            seen = (await session.execute(
                select(CrmSyncDeletion.side, CrmSyncDeletion.action).where(CrmSyncDeletion.crm_id == dee_crm,
                                                                           CrmSyncDeletion.local_id == dee)
            )).all()
        assert seen == [("crm", "tombstone")]
        assert (await ours(stack, eve)).deleted_at is None


async def test_every_record_synced_once_through_a_429_storm_and_a_lost_reply(
    temporal_env, migrated_database_url, tmp_path
):
    async with sync_stack(temporal_env, migrated_database_url, tmp_path) as stack, running(stack):
        ids = [await add_contact(stack, email=f"p{i:03d}@storm.test", first_name=f"P{i}") for i in range(150)]
        stack.admin.put("/_sandbox/faults/hubspot", json={"rules": [
            {"count": 2, "status_code": 429, "retry_after_s": 0.2, "path_contains": "/search"},
            {"count": 4, "status_code": 429, "retry_after_s": 0.2, "methods": ["POST"], "path_contains": "/batch/upsert"},
            # Applied, but the answer is lost: the retry must not create a second copy.
            {"count": 1, "status_code": 502, "after_commit": True, "methods": ["POST"], "path_contains": "/batch/upsert"},
        ]}).raise_for_status()
        inp = crm_sync_input(stack.settings, stack.tenant)
        # Continue-as-new every 2 rounds: the counters and the cursor survive it.
        inp.interval_s, inp.rounds_per_run = 0.2, 2
        await ensure_crm_sync(stack.client, stack.settings, inp)
        first_run = (await stack.handle().describe()).run_id

        async def all_linked():
            async with stack.sessions() as session:
                return await session.scalar(select(func.count()).where(
                    Contact.id.in_(ids), Contact.crm_id.is_not(None))) == len(ids)

        await eventually(all_linked, "every contact to be linked")
        settled = await round_done_after(stack, max(4, (await status(stack)).rounds))
        assert (await stack.handle().describe()).run_id != first_run
        assert settled.totals["created_in_crm"] == len(ids)
        records = await all_crm_contacts(stack)
        assert len(records) == len(ids)
        assert sorted(r.properties[SYNC_KEY_PROPERTY] for r in records) == sorted(str(i) for i in ids)
        async with stack.sessions() as session:
            links = dict((await session.execute(select(Contact.id, Contact.crm_id).where(Contact.id.in_(ids)))).all())
        assert {str(k): v for k, v in links.items()} == {r.properties[SYNC_KEY_PROPERTY]: r.id for r in records}
        counts = stack.admin.get("/_sandbox/requests/hubspot").json()["counts"]
        upserts = {k: v for k, v in counts.items() if "/batch/upsert" in k}
        assert stack.admin.get("/_sandbox/faults/hubspot").json()["rules"] == []  # every fault was hit
        assert sum(v for k, v in counts.items() if "/search" in k and k.endswith(" 429")) == 2
        assert sum(v for k, v in upserts.items() if k.endswith(" 429")) == 4
        assert sum(v for k, v in upserts.items() if k.endswith(" 502")) == 1
        # Two pages of creates, one of them sent again after its reply was lost; no creates since.
        assert sum(v for k, v in upserts.items() if k.endswith(" 200")) == 2
        assert not any(k.startswith("POST /crm/v3/objects/contacts ") for k in counts)


async def test_sync_resumes_from_its_cursor_after_the_worker_dies_mid_page(
    temporal_env, migrated_database_url, tmp_path
):
    async with sync_stack(temporal_env, migrated_database_url, tmp_path) as stack:
        ids = [await add_contact(stack, email=f"k{i:03d}@crash.test", first_name=f"K{i}") for i in range(250)]
        # The second page's upsert is applied only after a pause: the worker dies meanwhile.
        stack.admin.put("/_sandbox/faults/hubspot", json={"rules": [
            {"count": 1, "methods": ["POST"], "path_contains": "/batch/upsert"},
            {"count": 1, "delay_s": 2.0, "methods": ["POST"], "path_contains": "/batch/upsert"},
        ]}).raise_for_status()
        inp: CrmSyncInput = crm_sync_input(stack.settings, stack.tenant)
        inp.interval_s, inp.heartbeat_timeout_s = 0.2, 2.0
        await ensure_crm_sync(stack.client, stack.settings, inp)

        async def linked() -> int:
            async with stack.sessions() as session:
                return await session.scalar(select(func.count()).where(Contact.id.in_(ids), Contact.crm_id.is_not(None)))

        async def slow_upsert_in_flight():
            return stack.admin.get("/_sandbox/faults/hubspot").json()["rules"] == []

        workers = stack.workers()
        async with workers:
            await workers.enter()  # type: ignore[attr-defined]
            await eventually(slow_upsert_in_flight, "the second page's upsert to be in flight")
        # The worker is gone mid-page: that page's transaction rolled back (the first page's
        # stays committed), while the CRM still applies the slow upsert.
        assert await linked() == 100

        async with running(stack):
            await eventually(lambda: _equals(linked(), len(ids)), "every contact to be linked after the restart")
            await round_done_after(stack, (await status(stack)).rounds)
        records = await all_crm_contacts(stack)
        assert len(records) == len(ids)
        assert sorted(r.properties[SYNC_KEY_PROPERTY] for r in records) == sorted(str(i) for i in ids)
        assert len({r.properties["email"] for r in records}) == len(ids)
        async with stack.sessions() as session:
            versions = set((await session.scalars(select(Contact.version).where(Contact.id.in_(ids)))).all())
            assert versions == {1}  # linking is bookkeeping, not an edit of ours
