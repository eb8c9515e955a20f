"""CRM sync activities (integrations queue): each page reads the CRM, writes both sides and
moves its cursor in one PostgreSQL transaction.

Why one activity class on the integrations queue rather than CRM calls there and database writes
on orchestration: a page's CRM reads, its decisions and the cursor it consumed must commit
together, and splitting them would route every page of records through the workflow history
(payload limits, history growth) without making anything safer. The CRM calls are what these
activities spend their time on, so they scale with the integrations workers.

Crash safety: the sync state row of (tenant, object type) is locked ``FOR UPDATE`` for the whole
page, so an attempt that outlived its timeout cannot interleave with its retry. CRM writes
happen before the commit and are idempotent (absolute property values; creates keyed by our row
id through ``agency_sync_key``), and re-deciding a record whose writes already landed writes
nothing (see agency.sync.reconcile), so a page retried after a crash converges instead of
duplicating.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.integration_errors import provider_errors
from agency.db.models import Tenant
from agency.db.models_contacts import Company, Contact
from agency.db.models_sync import CrmSyncDeletion, CrmSyncState, SyncConflict
from agency.integrations.crm import SYNC_KEY_PROPERTY, CrmRecord, HubSpotCrm
from agency.integrations.errors import ProviderRejected
from agency.integrations.credentials import CredentialCipher, TenantCredentialSource
from agency.integrations.http import bearer
from agency.settings import Settings
from agency.sync import snapshot as snapshots
from agency.sync.contracts import (
    CrmSyncActivity,
    FinishRoundRequest,
    FinishRoundResult,
    ResolutionRequest,
    ResolutionResult,
    SyncPageRequest,
    SyncPageResult,
)
from agency.sync.mapping import (
    MATCH_FIELD,
    crm_properties,
    normalize,
    ours_from_row,
    spec,
    specs,
    theirs_from_crm,
    to_crm,
)
from agency.sync.policy import SyncPolicy
from agency.sync.reconcile import RecordDecision, on_crm_archived, on_local_deleted, reconcile, resolve_field

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Search is eventually consistent: each pull starts this long before the newest change it saw,
# so a change the index had not caught up with last time is read now (re-reading is harmless).
PULL_OVERLAP = timedelta(seconds=2)
CRM_CONCURRENCY = 8  # parallel single-record CRM calls within one page
RECORD_FIELD = "_record"  # the conflict "field" of a deletion sent to review
MODELS: dict[str, type[Contact] | type[Company]] = {"contacts": Contact, "companies": Company}
# One record's decision on this page: our row, the CRM record it is linked to, what to do.
Outcome = tuple[Contact | Company, str, RecordDecision]


CrmFactory = Callable[[str, uuid.UUID], HubSpotCrm]


def crm_factory(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> CrmFactory:
    """``(tenant slug, tenant id) -> HubSpotCrm``: the one place a tenant's CRM client is built.

    Sandbox mode: every tenant's portal is the local sandbox face, which takes the sandbox token.
    Live mode: the tenant's stored HubSpot credential (rotations reach running workers).
    """
    url, timeout = settings.provider_url("hubspot"), settings.integration_timeout_s
    if settings.integrations_target == "sandbox":
        token = bearer(settings.channel_token.get_secret_value())
        return lambda slug, tenant_id: HubSpotCrm(url, token, timeout_s=timeout)
    cipher = CredentialCipher.from_settings(settings)
    return lambda slug, tenant_id: HubSpotCrm(
        url, TenantCredentialSource(sessions, tenant_id, "hubspot", cipher=cipher), timeout_s=timeout
    )


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _row_values(object_type: str, row: Contact | Company) -> dict[str, str | None]:
    columns = {s.field: getattr(row, s.field) for s in specs(object_type) if not s.in_properties}
    return ours_from_row(object_type, columns, row.properties or {})


def _row_times(object_type: str, row: Contact | Company) -> dict[str, datetime | None]:
    edited = row.field_modified_at or {}
    fallback = _aware(row.updated_at)
    return {s.field: _aware(edited.get(s.field)) or fallback for s in specs(object_type)}


def _set_field(object_type: str, row: Contact | Company, name: str, value: str | None, at: datetime | None) -> None:
    field_spec = spec(object_type, name)
    if field_spec.in_properties:
        props = dict(row.properties or {})
        if value is None:
            props.pop(name, None)
        else:
            props[name] = value
        row.properties = props
    elif name == "name" and value is None:
        pass  # a company keeps its name: the column is required
    else:
        setattr(row, name, value)
    times = dict(row.field_modified_at or {})
    times[name] = (at or datetime.now(UTC)).isoformat()
    row.field_modified_at = times


def _apply_ours(object_type: str, row: Contact | Company, decision: RecordDecision) -> None:
    for name, (value, at) in decision.ours_updates.items():
        _set_field(object_type, row, name, value, at)
    if decision.ours_updates:
        row.version = (row.version or 1) + 1


def _count(counts: dict[str, int], name: str, n: int = 1) -> None:
    counts[name] = counts.get(name, 0) + n


class CrmSyncActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], crm_for_tenant: CrmFactory) -> None:
        self._sessions = sessions
        self._crm_for_tenant = crm_for_tenant
        self._crms: dict[str, HubSpotCrm] = {}
        self._tenant_ids: dict[str, uuid.UUID] = {}

    def all(self) -> list:
        return [self.pull_page, self.pull_archived_page, self.push_page, self.finish_round, self.apply_resolution]

    async def close(self) -> None:
        for crm in self._crms.values():
            await crm.aclose()
        self._crms.clear()

    def _crm(self, tenant: str) -> HubSpotCrm:
        # One pooled client per tenant for the worker's lifetime (after _tenant_id resolved it).
        if tenant not in self._crms:
            self._crms[tenant] = self._crm_for_tenant(tenant, self._tenant_ids[tenant])
        return self._crms[tenant]

    async def _tenant_id(self, session: AsyncSession, slug: str) -> uuid.UUID:
        if slug not in self._tenant_ids:
            tenant_id = await session.scalar(select(Tenant.id).where(Tenant.slug == slug))
            if tenant_id is None:
                raise ApplicationError(f"unknown tenant {slug!r}", type="UnknownTenant", non_retryable=True)
            self._tenant_ids[slug] = tenant_id
        return self._tenant_ids[slug]

    async def _state(self, session: AsyncSession, tenant_id: uuid.UUID, object_type: str) -> CrmSyncState:
        """The (tenant, object type) state row, locked until the page's transaction ends."""
        await session.execute(
            insert(CrmSyncState).values(tenant_id=tenant_id, object_type=object_type).on_conflict_do_nothing()
        )
        return (await session.execute(
            select(CrmSyncState).where(CrmSyncState.tenant_id == tenant_id, CrmSyncState.object_type == object_type)
            .with_for_update()
        )).scalar_one()

    # ---- pull ------------------------------------------------------------------------------
    @activity.defn(name=CrmSyncActivity.PULL_PAGE)
    async def pull_page(self, req: SyncPageRequest) -> SyncPageResult:
        """Apply one page of CRM records changed since the cursor, and move the cursor past it."""
        obj = req.object_type
        counts: dict[str, int] = {}
        async with _heartbeating(), self._sessions() as session, session.begin():
            tenant_id = await self._tenant_id(session, req.tenant)
            crm = self._crm(req.tenant)
            state = await self._state(session, tenant_id, obj)
            since = state.pull_since or EPOCH
            with provider_errors(f"search {obj} changed since {since.isoformat()}"):
                page = await crm.search_modified_since(
                    obj, since, properties=crm_properties(obj), after=state.pull_after, limit=req.page_size
                )
            await self._apply_crm_records(session, crm, tenant_id, obj, page.records, req.policy, counts)
            newest = max((r.updated_at for r in page.records), default=None)
            if newest is not None and (state.pull_max_seen is None or newest > state.pull_max_seen):
                state.pull_max_seen = newest
            if page.next_after is not None:
                state.pull_after = page.next_after
            else:
                # The query was read to its end (or hit the result cap): the next one starts
                # from the newest change seen, a little earlier for the index's lag.
                state.pull_after = None
                if page.capped and newest is not None:
                    state.pull_since = newest
                elif state.pull_max_seen is not None:
                    state.pull_since = max(since, state.pull_max_seen - PULL_OVERLAP)
            cursor = f"since={state.pull_since.isoformat() if state.pull_since else '-'} after={state.pull_after or '-'}"
        more = page.next_after is not None or (page.capped and bool(page.records))
        return SyncPageResult(object_type=obj, more=more, counts=counts, cursor=cursor)

    async def _apply_crm_records(
        self, session: AsyncSession, crm: HubSpotCrm, tenant_id: uuid.UUID, obj: str,
        records: list[CrmRecord], policy: SyncPolicy, counts: dict[str, int],
    ) -> None:
        if not records:
            return
        model = MODELS[obj]
        _count(counts, "seen", len(records))
        linked = {
            row.crm_id: row
            for row in (await session.scalars(
                select(model).where(model.tenant_id == tenant_id, model.crm_id.in_([r.id for r in records]))
            )).all()
        }
        # Records we have never linked: an unlinked live row with the same email/domain is the same
        # person or company (first sync of a store that already overlaps the CRM).
        match_field = MATCH_FIELD[obj]
        wanted = {
            normalize(match_field, r.properties.get(spec(obj, match_field).crm_property))
            for r in records if r.id not in linked
        } - {None}
        matches: dict[str, Contact | Company] = {}
        if wanted:
            column = getattr(model, match_field)
            for row in (await session.scalars(
                select(model).where(model.tenant_id == tenant_id, model.crm_id.is_(None),
                                    model.deleted_at.is_(None), column.in_(wanted))
            )).all():
                matches[getattr(row, match_field)] = row
        writes: list[tuple[str, dict[str, str]]] = []
        outcomes: list[Outcome] = []
        for record in records:
            if record.archived:
                row = linked.get(record.id)
                if row is not None:
                    await self._crm_archived(session, tenant_id, obj, row, record.id, record.archived_at, policy, counts)
                continue
            theirs = theirs_from_crm(obj, record.properties)
            theirs_at = {s.field: record.updated_at for s in specs(obj)}
            row = linked.get(record.id)
            if row is None and theirs.get(match_field) is not None:
                row = matches.pop(theirs[match_field], None)
            if row is None:
                if obj == "companies" and theirs.get("name") is None:
                    continue  # our companies need a name; it comes with the CRM's next edit
                row = model(id=uuid.uuid4(), tenant_id=tenant_id, source="crm", crm_id=record.id, properties={},
                            field_modified_at={})
                decision = reconcile(obj, ours={}, theirs=theirs, snapshot=None, policy=policy,
                                     theirs_modified_at=theirs_at)
                _apply_ours(obj, row, decision)
                row.version = 1
                row.synced_hash = snapshots.encode(decision.snapshot)
                session.add(row)
                _count(counts, "created_ours")
                continue
            if row.deleted_at is not None:
                continue  # tombstoned here: the push pass archives it (or the policy keeps it)
            snapshot = snapshots.decode(row.synced_hash) if row.crm_id == record.id else None
            decision = reconcile(obj, ours=_row_values(obj, row), theirs=theirs, snapshot=snapshot, policy=policy,
                                 ours_modified_at=_row_times(obj, row), theirs_modified_at=theirs_at)
            outcomes.append((row, record.id, decision))
            if decision.theirs_updates:
                writes.append((record.id, to_crm(obj, decision.theirs_updates)))
        await self._store(session, tenant_id, obj, outcomes, counts)
        await self._write_crm(crm, obj, writes, counts)

    async def _store(
        self, session: AsyncSession, tenant_id: uuid.UUID, obj: str, outcomes: list[Outcome], counts: dict[str, int],
    ) -> None:
        """Write a page's decisions on our side: changed values through the ORM (an edit: version and
        updated_at move), links and snapshots alone in one bulk UPDATE that keeps updated_at (not an
        edit of ours, so the push does not see it as one); then the page's conflicts."""
        model = MODELS[obj]
        bookkeeping: list[dict[str, Any]] = []
        for row, crm_id, decision in outcomes:
            if decision.ours_updates:
                _apply_ours(obj, row, decision)
                row.crm_id = crm_id
                row.synced_hash = snapshots.encode(decision.snapshot)
                _count(counts, "pulled")
            else:
                bookkeeping.append({"id": row.id, "crm_id": crm_id, "synced_hash": snapshots.encode(decision.snapshot),
                                    "updated_at": row.updated_at})
        await session.flush()
        if bookkeeping:
            await session.execute(update(model), bookkeeping)
        await self._record_conflicts(session, tenant_id, obj, outcomes)

    async def _record_conflicts(self, session: AsyncSession, tenant_id: uuid.UUID, obj: str,
                                outcomes: list[Outcome]) -> None:
        by_local = {row.id: decision for row, _, decision in outcomes}
        if not by_local:
            return
        # A pending conflict on a field the sides agree on again (or a policy settled) needs no person.
        pending = (await session.execute(
            select(SyncConflict.id, SyncConflict.local_id, SyncConflict.field).where(
                SyncConflict.tenant_id == tenant_id, SyncConflict.object_type == obj,
                SyncConflict.status == "pending", SyncConflict.local_id.in_(list(by_local)))
        )).all()
        superseded = [
            conflict_id for conflict_id, local_id, name in pending
            if name in by_local[local_id].snapshot and name not in {c.field for c in by_local[local_id].conflicts}
        ]
        if superseded:
            await session.execute(
                update(SyncConflict).where(SyncConflict.id.in_(superseded))
                .values(status="resolved", resolution="superseded", resolved_by="sync", resolved_at=func.now())
                .execution_options(synchronize_session=False)
            )
        for row, crm_id, decision in outcomes:
            for conflict in decision.conflicts:
                await self._upsert_conflict(
                    session, tenant_id, obj, row.id, crm_id, conflict.field, conflict.ours, conflict.theirs,
                    conflict.ours_modified_at, conflict.theirs_modified_at,
                )

    async def _upsert_conflict(
        self, session: AsyncSession, tenant_id: uuid.UUID, obj: str, local_id: uuid.UUID, crm_id: str | None,
        field_name: str, ours: str | None, theirs: str | None, ours_at: datetime | None, theirs_at: datetime | None,
    ) -> None:
        values = dict(ours=ours, theirs=theirs, ours_modified_at=ours_at, theirs_modified_at=theirs_at, crm_id=crm_id)
        await session.execute(
            insert(SyncConflict)
            .values(id=uuid.uuid4(), tenant_id=tenant_id, object_type=obj, local_id=local_id, field=field_name, **values)
            .on_conflict_do_update(
                index_elements=["tenant_id", "object_type", "local_id", "field"],
                index_where=SyncConflict.status == "pending",
                set_={**values, "updated_at": func.now()},
            )
        )

    async def _write_crm(self, crm: HubSpotCrm, obj: str, writes: list[tuple[str, dict[str, str]]],
                         counts: dict[str, int]) -> None:
        slots = asyncio.Semaphore(CRM_CONCURRENCY)

        async def write(record_id: str, properties: dict[str, str]) -> None:
            async with slots:
                with provider_errors(f"update {obj} {record_id}"):
                    await crm.update(obj, record_id, properties)

        await asyncio.gather(*(write(record_id, props) for record_id, props in writes))
        _count(counts, "pushed", len(writes))

    # ---- deletions ---------------------------------------------------------------------------
    async def _deletion_seen(self, session: AsyncSession, tenant_id: uuid.UUID, obj: str, crm_id: str,
                             side: str, local_id: uuid.UUID | None, action: str, at: datetime | None) -> bool:
        """Record a deletion once; False when it was handled before."""
        inserted = await session.scalar(
            insert(CrmSyncDeletion)
            .values(tenant_id=tenant_id, object_type=obj, crm_id=crm_id, side=side, local_id=local_id,
                    action=action, deleted_at=at)
            .on_conflict_do_nothing()
            .returning(CrmSyncDeletion.id)
        )
        return inserted is not None

    async def _crm_archived(
        self, session: AsyncSession, tenant_id: uuid.UUID, obj: str, row: Contact | Company, crm_id: str,
        archived_at: datetime | None, policy: SyncPolicy, counts: dict[str, int],
    ) -> None:
        action = on_crm_archived(policy, ours_deleted=row.deleted_at is not None).action
        if not await self._deletion_seen(session, tenant_id, obj, crm_id, "crm", row.id, action, archived_at):
            return
        if action == "tombstone":
            row.deleted_at = archived_at or datetime.now(UTC)
            row.version = (row.version or 1) + 1
            _count(counts, "tombstoned")
        elif action == "recreate":
            # Unlinked, the push pass creates it again (under a new sync key: see _sync_key).
            row.crm_id = None
            row.synced_hash = None
            row.version = (row.version or 1) + 1
            _count(counts, "recreated")
        elif action == "review":
            await self._upsert_conflict(session, tenant_id, obj, row.id, crm_id, RECORD_FIELD, "present", "archived",
                                        _aware(row.updated_at), archived_at)
            _count(counts, "conflicts")
        await session.flush()

    @activity.defn(name=CrmSyncActivity.PULL_ARCHIVED_PAGE)
    async def pull_archived_page(self, req: SyncPageRequest) -> SyncPageResult:
        """One page of the CRM's archived records: apply the deletion policy to the ones we hold."""
        obj, model = req.object_type, MODELS[req.object_type]
        counts: dict[str, int] = {}
        async with _heartbeating(), self._sessions() as session, session.begin():
            tenant_id = await self._tenant_id(session, req.tenant)
            crm = self._crm(req.tenant)
            state = await self._state(session, tenant_id, obj)
            with provider_errors(f"list archived {obj}"):
                page = await crm.list_page(obj, properties=[], after=state.archived_after, limit=req.page_size,
                                           archived=True)
            ids = [r.id for r in page.records]
            handled = set((await session.scalars(
                select(CrmSyncDeletion.crm_id).where(
                    CrmSyncDeletion.tenant_id == tenant_id, CrmSyncDeletion.object_type == obj,
                    CrmSyncDeletion.side == "crm", CrmSyncDeletion.crm_id.in_(ids))
            )).all()) if ids else set()
            fresh = [r for r in page.records if r.id not in handled]
            rows = {
                row.crm_id: row for row in (await session.scalars(
                    select(model).where(model.tenant_id == tenant_id, model.crm_id.in_([r.id for r in fresh]))
                )).all()
            } if fresh else {}
            for record in fresh:
                row = rows.get(record.id)
                if row is not None:
                    await self._crm_archived(session, tenant_id, obj, row, record.id, record.archived_at,
                                             req.policy, counts)
                if record.archived_at and (state.archived_since is None or record.archived_at > state.archived_since):
                    state.archived_since = record.archived_at
            state.archived_after = page.next_after
            cursor = f"archived_after={state.archived_after or '-'}"
        return SyncPageResult(object_type=obj, more=page.next_after is not None, counts=counts, cursor=cursor)

    # ---- push ------------------------------------------------------------------------------
    @activity.defn(name=CrmSyncActivity.PUSH_PAGE)
    async def push_page(self, req: SyncPageRequest) -> SyncPageResult:
        """Push one page of our rows edited since the push cursor: creates, updates, archives."""
        obj, model = req.object_type, MODELS[req.object_type]
        counts: dict[str, int] = {}
        async with _heartbeating(), self._sessions() as session, session.begin():
            tenant_id = await self._tenant_id(session, req.tenant)
            crm = self._crm(req.tenant)
            state = await self._state(session, tenant_id, obj)
            query = select(model).where(model.tenant_id == tenant_id)
            if state.push_since is not None:
                after_id = state.push_after_id or uuid.UUID(int=0)
                query = query.where(tuple_(model.updated_at, model.id) > tuple_(state.push_since, after_id))
            rows = list((await session.scalars(
                query.order_by(model.updated_at, model.id).limit(req.page_size).with_for_update()
            )).all())
            # Taken before any write below can move a row's updated_at.
            position = (rows[-1].updated_at, rows[-1].id) if rows else None
            creates: list[Contact | Company] = []
            updates: list[Contact | Company] = []
            for row in rows:
                if row.deleted_at is not None:
                    if row.crm_id is not None:
                        await self._local_deleted(session, crm, tenant_id, obj, row, req.policy, counts)
                elif row.crm_id is None:
                    creates.append(row)
                elif self._edited_here(obj, row, req.policy):
                    updates.append(row)
            if creates:
                await self._create_in_crm(session, crm, tenant_id, obj, creates, req.policy, counts)
            if updates:
                await self._update_in_crm(session, crm, tenant_id, obj, updates, req.policy, counts)
            more = len(rows) == req.page_size
            if position is not None:
                state.push_since, state.push_after_id = position
            if not more and state.push_since is not None:
                # End of the pass: the next pass starts a little earlier (late-committing edits).
                state.push_since = min(state.push_since, datetime.now(UTC) - timedelta(seconds=req.push_overlap_s))
                state.push_after_id = None
            cursor = f"since={state.push_since.isoformat() if state.push_since else '-'}"
        return SyncPageResult(object_type=obj, more=more, counts=counts, cursor=cursor)

    def _edited_here(self, obj: str, row: Contact | Company, policy: SyncPolicy) -> bool:
        snapshot = snapshots.decode(row.synced_hash)
        if snapshot is None:
            return True
        ours = _row_values(obj, row)
        for s in specs(obj):
            if policy.for_field(obj, s.field).kind == "never":
                continue
            base = snapshot.get(s.field)
            if base is None or snapshots.digest(ours[s.field]) != base.ours:
                return True
        return False

    async def _sync_keys(self, session: AsyncSession, tenant_id: uuid.UUID, obj: str,
                         rows: list[Contact | Company]) -> dict[uuid.UUID, str]:
        """Each row's create key: its id; after the CRM archived and we re-create, id + generation."""
        recreated = dict((await session.execute(
            select(CrmSyncDeletion.local_id, func.count())
            .where(CrmSyncDeletion.tenant_id == tenant_id, CrmSyncDeletion.object_type == obj,
                   CrmSyncDeletion.action == "recreate", CrmSyncDeletion.local_id.in_([r.id for r in rows]))
            .group_by(CrmSyncDeletion.local_id)
        )).all())
        return {r.id: str(r.id) if not recreated.get(r.id) else f"{r.id}.{recreated[r.id]}" for r in rows}

    async def _create_in_crm(
        self, session: AsyncSession, crm: HubSpotCrm, tenant_id: uuid.UUID, obj: str,
        rows: list[Contact | Company], policy: SyncPolicy, counts: dict[str, int],
    ) -> None:
        keys = await self._sync_keys(session, tenant_id, obj, rows)
        empty = {s.field: None for s in specs(obj)}
        planned: list[tuple[Contact | Company, RecordDecision]] = []
        for row in rows:
            # What a brand-new CRM record gets: our values, minus fields the policy keeps private.
            decision = reconcile(obj, ours=_row_values(obj, row), theirs=empty, snapshot=None, policy=policy)
            planned.append((row, decision))
        inputs = [(keys[row.id], to_crm(obj, decision.theirs_updates)) for row, decision in planned]
        created: dict[str, CrmRecord] = {}
        try:
            with provider_errors(f"batch upsert {len(inputs)} {obj}"):
                records = await crm.batch_upsert(obj, inputs)
            created = {r.properties.get(SYNC_KEY_PROPERTY) or "": r for r in records}
        except ApplicationError as err:
            if err.non_retryable is not True:
                raise
            # One input was refused (an email the CRM already holds on a record we never linked):
            # create one by one, so the others are not held back by it.
            for sync_key, properties in inputs:
                record = await self._create_one(crm, obj, sync_key, properties, counts)
                if record is not None:
                    created[sync_key] = record
        outcomes: list[Outcome] = []
        for row, _ in planned:
            record = created.get(keys[row.id])
            if record is None:
                continue
            decision = reconcile(obj, ours=_row_values(obj, row), theirs=theirs_from_crm(obj, record.properties),
                                 snapshot=None, policy=policy, ours_modified_at=_row_times(obj, row),
                                 theirs_modified_at={s.field: record.updated_at for s in specs(obj)})
            outcomes.append((row, record.id, decision))
            _count(counts, "created_in_crm")
        await self._store(session, tenant_id, obj, outcomes, counts)

    async def _create_one(self, crm: HubSpotCrm, obj: str, sync_key: str, properties: dict[str, str],
                          counts: dict[str, int]) -> CrmRecord | None:
        try:
            with provider_errors(f"create {obj} {sync_key}"):
                return await crm.create(obj, {k: v or None for k, v in properties.items()}, sync_key=sync_key)
        except ApplicationError as err:
            if err.non_retryable is not True:
                raise
            cause = err.__cause__
            match_field = MATCH_FIELD[obj]
            match_property = spec(obj, match_field).crm_property
            if isinstance(cause, ProviderRejected) and cause.status_code == 409 and properties.get(match_property):
                # The CRM already holds this email/domain: that record is ours to link.
                with provider_errors(f"get {obj} by {match_property}"):
                    existing = await crm.get(obj, properties[match_property], properties=crm_properties(obj),
                                             id_property=match_property)
                if existing is not None:
                    return existing
            activity.logger.warning("CRM refused %s %s: %s", obj, sync_key, err)
            _count(counts, "rejected")
            return None

    async def _update_in_crm(
        self, session: AsyncSession, crm: HubSpotCrm, tenant_id: uuid.UUID, obj: str,
        rows: list[Contact | Company], policy: SyncPolicy, counts: dict[str, int],
    ) -> None:
        slots = asyncio.Semaphore(CRM_CONCURRENCY)

        async def current(row: Contact | Company) -> CrmRecord | None:
            # The CRM side now (it may have changed since this round's pull): merging against it
            # keeps a concurrent CRM edit from being overwritten blindly.
            async with slots:
                with provider_errors(f"get {obj} {row.crm_id}"):
                    return await crm.get(obj, row.crm_id or "", properties=crm_properties(obj))

        records = await asyncio.gather(*(current(row) for row in rows))
        writes: list[tuple[str, dict[str, str]]] = []
        outcomes: list[Outcome] = []
        for row, record in zip(rows, records, strict=True):
            if record is None:
                # Gone from the CRM: the same as seeing it archived.
                await self._crm_archived(session, tenant_id, obj, row, row.crm_id or "", None, policy, counts)
                continue
            decision = reconcile(
                obj, ours=_row_values(obj, row), theirs=theirs_from_crm(obj, record.properties),
                snapshot=snapshots.decode(row.synced_hash), policy=policy, ours_modified_at=_row_times(obj, row),
                theirs_modified_at={s.field: record.updated_at for s in specs(obj)},
            )
            outcomes.append((row, record.id, decision))
            if decision.theirs_updates:
                writes.append((record.id, to_crm(obj, decision.theirs_updates)))
        await self._store(session, tenant_id, obj, outcomes, counts)
        await self._write_crm(crm, obj, writes, counts)

    async def _local_deleted(
        self, session: AsyncSession, crm: HubSpotCrm, tenant_id: uuid.UUID, obj: str, row: Contact | Company,
        policy: SyncPolicy, counts: dict[str, int],
    ) -> None:
        crm_id = row.crm_id or ""
        archived_there = (await session.scalar(
            select(func.count()).select_from(CrmSyncDeletion).where(
                CrmSyncDeletion.tenant_id == tenant_id, CrmSyncDeletion.object_type == obj,
                CrmSyncDeletion.crm_id == crm_id)
        )) or 0
        action = on_local_deleted(policy, crm_archived=archived_there > 0).action
        if archived_there:
            return  # handled already (by either side)
        if action == "archive":
            with provider_errors(f"archive {obj} {crm_id}"):
                await crm.archive(obj, crm_id)
            _count(counts, "archived_in_crm")
        await self._deletion_seen(session, tenant_id, obj, crm_id, "ours", row.id, action, row.deleted_at)

    # ---- round bookkeeping -------------------------------------------------------------------
    @activity.defn(name=CrmSyncActivity.FINISH_ROUND)
    async def finish_round(self, req: FinishRoundRequest) -> FinishRoundResult:
        async with self._sessions() as session, session.begin():
            tenant_id = await self._tenant_id(session, req.tenant)
            state = await self._state(session, tenant_id, req.object_type)
            state.rounds = (state.rounds or 0) + 1
            state.last_round_at = datetime.now(UTC)
            state.last_stats = dict(req.counts)
            totals = dict(state.totals or {})
            for name, value in req.counts.items():
                totals[name] = int(totals.get(name, 0)) + value
            state.totals = totals
            pending = await session.scalar(
                select(func.count()).select_from(SyncConflict).where(
                    SyncConflict.tenant_id == tenant_id, SyncConflict.object_type == req.object_type,
                    SyncConflict.status == "pending")
            )
            cursor = (f"pull_since={state.pull_since.isoformat() if state.pull_since else '-'} "
                      f"push_since={state.push_since.isoformat() if state.push_since else '-'}")
        return FinishRoundResult(object_type=req.object_type, pending_conflicts=int(pending or 0), cursor=cursor)

    # ---- review decisions --------------------------------------------------------------------
    @activity.defn(name=CrmSyncActivity.APPLY_RESOLUTION)
    async def apply_resolution(self, req: ResolutionRequest) -> ResolutionResult:
        """Write a person's choice to both sides and close the conflict (a closed one is left alone)."""
        decision = req.resolution
        try:
            conflict_id = uuid.UUID(decision.conflict_id)
        except ValueError:
            return ResolutionResult(decision.conflict_id, applied=False, detail="not a conflict id")
        async with _heartbeating(), self._sessions() as session, session.begin():
            tenant_id = await self._tenant_id(session, req.tenant)
            crm = self._crm(req.tenant)
            conflict = await session.scalar(
                select(SyncConflict).where(SyncConflict.id == conflict_id, SyncConflict.tenant_id == tenant_id)
                .with_for_update()
            )
            if conflict is None:
                return ResolutionResult(decision.conflict_id, applied=False, detail="no such conflict")
            if conflict.status != "pending":
                return ResolutionResult(decision.conflict_id, applied=False, detail=f"already {conflict.status}")
            obj, model = conflict.object_type, MODELS[conflict.object_type]
            await self._state(session, tenant_id, obj)  # serializes with the pages of this object type
            row = await session.scalar(select(model).where(model.id == conflict.local_id).with_for_update())
            if row is None:
                value = None
            elif conflict.field == RECORD_FIELD:
                value = await self._resolve_deletion(session, tenant_id, obj, row, conflict, decision.resolution)
            else:
                value = await self._resolve_field(crm, obj, row, conflict, decision)
            conflict.status = "resolved"
            conflict.resolution = decision.resolution
            conflict.resolved_value = value
            conflict.resolved_by = decision.resolved_by or "reviewer"
            conflict.resolved_at = datetime.now(UTC)
        return ResolutionResult(decision.conflict_id, applied=True)

    async def _resolve_field(self, crm: HubSpotCrm, obj: str, row: Contact | Company, conflict: SyncConflict,
                             decision: Any) -> str | None:
        name = conflict.field
        if decision.resolution == "ours":
            value = _row_values(obj, row)[name]
        elif decision.resolution == "theirs":
            # The CRM's value now, which may be newer than the one the conflict recorded.
            with provider_errors(f"get {obj} {row.crm_id}"):
                record = await crm.get(obj, row.crm_id or "", properties=crm_properties(obj)) if row.crm_id else None
            value = theirs_from_crm(obj, record.properties)[name] if record is not None else conflict.theirs
        else:
            value = normalize(name, decision.value)
        if row.crm_id:
            with provider_errors(f"update {obj} {row.crm_id}"):
                await crm.update(obj, row.crm_id, to_crm(obj, {name: value}))
        if _row_values(obj, row)[name] != value:
            _set_field(obj, row, name, value, datetime.now(UTC))
            row.version = (row.version or 1) + 1
        row.synced_hash = snapshots.encode(resolve_field(snapshots.decode(row.synced_hash), name, value))
        return value

    async def _resolve_deletion(self, session: AsyncSession, tenant_id: uuid.UUID, obj: str, row: Contact | Company,
                                conflict: SyncConflict, resolution: str) -> str:
        if resolution == "theirs":
            row.deleted_at = datetime.now(UTC)
            return "archived"
        # Keep ours: the next push creates it again, under a new sync key (see _sync_keys).
        await session.execute(
            update(CrmSyncDeletion)
            .where(CrmSyncDeletion.tenant_id == tenant_id, CrmSyncDeletion.object_type == obj,
                   CrmSyncDeletion.crm_id == (conflict.crm_id or ""), CrmSyncDeletion.side == "crm")
            .values(action="recreate")
        )
        row.crm_id = None
        row.synced_hash = None
        row.version = (row.version or 1) + 1
        return "present"


@contextlib.asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    """Heartbeat while a page runs (CRM retries can wait out long Retry-After pauses), so a
    dead worker is noticed within the heartbeat timeout and a live one is never timed out."""
    info = activity.info()
    timeout = info.heartbeat_timeout.total_seconds() if info.heartbeat_timeout else 0
    if timeout <= 0:
        yield
        return

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(max(0.2, timeout / 3))

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


