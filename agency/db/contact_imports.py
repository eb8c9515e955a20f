"""PostgreSQL side of contact imports: staging an upload, writing a cleaned chunk, the quarantine.

The cleaning rules are agency.cleaning (pure); this module loads what they need (rows, the
tenant's stored contacts with the batch's emails) and writes what their plan says, one chunk per
transaction together with the chunk's ledger row (see agency.db.models_imports).
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Text, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession

from agency.cleaning import csvfile
from agency.cleaning.contracts import ChunkRequest, ChunkResult, Counts, ImportTotals, StageResult
from agency.cleaning.dedupe import ExistingContact, MergedContact, merge_into_existing
from agency.cleaning.pipeline import CleanBatch, Quarantined, clean_batch, merged_from_refs, plan
from agency.cleaning.schema import column_map
from agency.db.models_contacts import Company, Contact
from agency.db.models_imports import ContactImport, ContactImportChunk, ContactImportRow, ImportQuarantine

STAGE_BATCH_ROWS = 1000
_LIVE = text("deleted_at IS NULL AND email IS NOT NULL")
_LIVE_DOMAIN = text("deleted_at IS NULL AND domain IS NOT NULL")


class ImportNotFound(LookupError):
    pass


def row_ref(import_id: uuid.UUID | str, row_number: int) -> str:
    """How a merged row is named in a contact's ``properties.merged_from``."""
    return f"import:{import_id}:row:{row_number}"


def chunk_of(row_number: int, chunk_rows: int) -> int:
    return (row_number - 1) // chunk_rows


def chunk_bounds(chunk: int, chunk_rows: int) -> tuple[int, int]:
    return chunk * chunk_rows + 1, (chunk + 1) * chunk_rows


_UPDATE_CONTACT = text(
    "UPDATE contacts SET phone = :phone, first_name = :first_name, last_name = :last_name, job_title = :job_title,"
    " lifecycle_stage = :lifecycle_stage, company_id = :company_id, utm = :utm, properties = :properties,"
    " field_modified_at = :field_modified_at, version = version + 1, updated_at = now() WHERE id = :id"
).bindparams(
    bindparam("utm", type_=JSONB), bindparam("properties", type_=JSONB), bindparam("field_modified_at", type_=JSONB)
)

# One statement per chunk instead of one UPDATE per row.
_SET_ROW_OUTCOMES = text(
    "UPDATE contact_import_rows AS r SET outcome = v.outcome, contact_id = v.contact_id"
    " FROM unnest(:row_numbers, :outcomes, :contact_ids) AS v(row_number, outcome, contact_id)"
    " WHERE r.import_id = :import_id AND r.row_number = v.row_number"
).bindparams(
    bindparam("row_numbers", type_=ARRAY(Integer)),
    bindparam("outcomes", type_=ARRAY(Text)),
    bindparam("contact_ids", type_=ARRAY(UUID(as_uuid=True))),
)

# Reasons travel as JSON text: a list of JSON lists would be read as a multi-dimensional array.
_SET_QUARANTINE_REASONS = text(
    "UPDATE import_quarantine AS q SET reasons = v.reasons::jsonb, updated_at = now()"
    " FROM unnest(:row_numbers, :reasons) AS v(row_number, reasons)"
    " WHERE q.import_id = :import_id AND q.row_number = v.row_number"
).bindparams(bindparam("row_numbers", type_=ARRAY(Integer)), bindparam("reasons", type_=ARRAY(Text)))


@dataclass
class _Written:
    outcomes: dict[int, tuple[str, uuid.UUID]] = field(default_factory=dict)  # row -> (inserted|merged, contact)
    inserted: int = 0
    merged: int = 0


def _reasons(q: Quarantined) -> list[dict[str, str]]:
    return [r.as_dict() for r in q.reasons]


class ContactImportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # ---- the import record ------------------------------------------------------------
    async def create(self, tenant_id: uuid.UUID, *, filename: str, region: str | None, upload: bytes) -> ContactImport:
        record = ContactImport(tenant_id=tenant_id, filename=filename, region=region, upload=upload,
                               upload_bytes=len(upload), status="received")
        self._session.add(record)
        await self._session.flush()
        return record

    async def get(self, tenant_id: uuid.UUID, import_id: uuid.UUID) -> ContactImport | None:
        return await self._session.scalar(
            select(ContactImport).where(ContactImport.id == import_id, ContactImport.tenant_id == tenant_id)
        )

    async def _locked(self, import_id: uuid.UUID) -> ContactImport:
        record = await self._session.scalar(
            select(ContactImport).where(ContactImport.id == import_id).with_for_update()
        )
        if record is None:
            raise ImportNotFound(f"no contact import {import_id}")
        return record

    async def begin_reprocessing(self, tenant_id: uuid.UUID, import_id: uuid.UUID, region: str | None) -> int | None:
        """Start the next re-processing pass (its number) if the import is finished and staged, else None."""
        return await self._session.scalar(
            update(ContactImport)
            .where(ContactImport.id == import_id, ContactImport.tenant_id == tenant_id,
                   ContactImport.status.in_(("completed", "failed")), ContactImport.rows_total.is_not(None))
            .values(passes=ContactImport.passes + 1, status="processing", region=region, finished_at=None,
                    error=None, updated_at=func.now())
            .returning(ContactImport.passes)
        )

    # ---- staging -------------------------------------------------------------------------
    async def stage(self, import_id: uuid.UUID, chunk_rows: int) -> StageResult:
        """Parse the upload into one staged row per record (once; a retry finds them staged)."""
        record = await self._locked(import_id)
        if record.rows_total is None:
            text_body = csvfile.decode(record.upload or b"")
            batch: list[dict[str, Any]] = []
            total = 0
            for row_number, cells in csvfile.rows(text_body):
                batch.append({"import_id": import_id, "row_number": row_number, "raw": cells})
                total = row_number
                if len(batch) >= STAGE_BATCH_ROWS:
                    await self._stage_rows(batch)
                    batch = []
            if batch:
                await self._stage_rows(batch)
            record.rows_total = total
            record.upload = None  # the staged rows are the record from now on
            record.status = "processing"
        total = record.rows_total
        return StageResult(rows_total=total, chunks=list(range(-(-total // chunk_rows))))

    async def _stage_rows(self, batch: list[dict[str, Any]]) -> None:
        await self._session.execute(insert(ContactImportRow).values(batch).on_conflict_do_nothing())

    async def quarantined_chunks(self, import_id: uuid.UUID, chunk_rows: int) -> StageResult:
        record = await self._locked(import_id)
        numbers = await self._session.scalars(
            select(ImportQuarantine.row_number)
            .where(ImportQuarantine.import_id == import_id, ImportQuarantine.status == "quarantined")
        )
        chunks = sorted({chunk_of(n, chunk_rows) for n in numbers})
        return StageResult(rows_total=record.rows_total or 0, chunks=chunks)

    # ---- a chunk ---------------------------------------------------------------------------
    async def _claim_chunk(self, req: ChunkRequest, import_id: uuid.UUID) -> ContactImportChunk | None:
        """The ledger row of an already finished chunk, or None after claiming it for this transaction.

        A concurrent attempt at the same chunk waits (on the import's row lock, and on the ledger's
        key) until this transaction ends, then finds the chunk done.
        """
        claimed = await self._session.scalar(
            insert(ContactImportChunk)
            .values(import_id=import_id, pass_number=req.pass_number, chunk=req.chunk)
            .on_conflict_do_nothing()
            .returning(ContactImportChunk.chunk)
        )
        if claimed is not None:
            return None
        return await self._session.scalar(
            select(ContactImportChunk).where(ContactImportChunk.import_id == import_id,
                                             ContactImportChunk.pass_number == req.pass_number,
                                             ContactImportChunk.chunk == req.chunk)
        )

    async def _finish_chunk(self, req: ChunkRequest, import_id: uuid.UUID, counts: Counts) -> None:
        await self._session.execute(
            update(ContactImportChunk)
            .where(ContactImportChunk.import_id == import_id, ContactImportChunk.pass_number == req.pass_number,
                   ContactImportChunk.chunk == req.chunk)
            .values(rows=counts.rows, clean=counts.clean, merged=counts.merged, quarantined=counts.quarantined)
        )

    @staticmethod
    def _done(req: ChunkRequest, done: ContactImportChunk) -> ChunkResult:
        return ChunkResult(chunk=req.chunk, already_done=True,
                           counts=Counts(done.rows, done.clean, done.merged, done.quarantined))

    async def process_chunk(self, req: ChunkRequest) -> ChunkResult:
        """Clean the chunk's staged rows into contacts and the quarantine (call inside a transaction)."""
        import_id = uuid.UUID(req.import_id)
        record = await self._locked(import_id)  # first: an unknown import is ImportNotFound, not a key error
        if (done := await self._claim_chunk(req, import_id)) is not None:
            return self._done(req, done)
        first, last = chunk_bounds(req.chunk, req.chunk_rows)
        staged = (await self._session.execute(
            select(ContactImportRow.row_number, ContactImportRow.raw)
            .where(ContactImportRow.import_id == import_id, ContactImportRow.row_number.between(first, last))
            .order_by(ContactImportRow.row_number)
        )).all()
        batch = self._clean([(n, raw) for n, raw in staged], record.region, record.created_at)
        written = await self._write(record, batch)
        if batch.quarantined:
            await self._session.execute(
                insert(ImportQuarantine)
                .values([{"import_id": import_id, "row_number": q.row_number, "raw": q.raw, "reasons": _reasons(q)}
                         for q in batch.quarantined])
                .on_conflict_do_nothing()
            )
        outcomes = dict(written.outcomes)
        outcomes.update({q.row_number: ("quarantined", None) for q in batch.quarantined})
        await self._set_row_outcomes(import_id, outcomes)
        counts = Counts(rows=len(staged), clean=written.inserted, merged=written.merged,
                        quarantined=len(batch.quarantined))
        await self._finish_chunk(req, import_id, counts)
        record.rows_done += counts.rows
        record.clean += counts.clean
        record.merged += counts.merged
        record.quarantined += counts.quarantined
        return ChunkResult(chunk=req.chunk, counts=counts)

    async def reprocess_chunk(self, req: ChunkRequest) -> ChunkResult:
        """Run the chunk's quarantined rows through the current rules; released rows leave the quarantine."""
        import_id = uuid.UUID(req.import_id)
        record = await self._locked(import_id)  # first: an unknown import is ImportNotFound, not a key error
        if (done := await self._claim_chunk(req, import_id)) is not None:
            return self._done(req, done)
        first, last = chunk_bounds(req.chunk, req.chunk_rows)
        held = (await self._session.execute(
            select(ImportQuarantine.row_number, ImportQuarantine.raw)
            .where(ImportQuarantine.import_id == import_id, ImportQuarantine.status == "quarantined",
                   ImportQuarantine.row_number.between(first, last))
            .order_by(ImportQuarantine.row_number)
            .with_for_update()
        )).all()
        # The rows' own age is the upload's, not this pass's: newer stored values still win.
        batch = self._clean([(n, raw) for n, raw in held], record.region, record.created_at)
        written = await self._write(record, batch)
        released = sorted(written.outcomes)
        if released:
            await self._session.execute(
                update(ImportQuarantine)
                .where(ImportQuarantine.import_id == import_id, ImportQuarantine.row_number.in_(released))
                .values(status="reprocessed", reprocessed_at=func.now(), updated_at=func.now())
            )
            await self._set_row_outcomes(import_id, written.outcomes)
        if batch.quarantined:  # the reasons under the current rules
            await self._session.execute(_SET_QUARANTINE_REASONS, {
                "import_id": import_id, "row_numbers": [q.row_number for q in batch.quarantined],
                "reasons": [json.dumps(_reasons(q)) for q in batch.quarantined],
            })
        counts = Counts(rows=len(held), clean=written.inserted, merged=written.merged,
                        quarantined=len(batch.quarantined))
        await self._finish_chunk(req, import_id, counts)
        record.clean += counts.clean
        record.merged += counts.merged
        record.quarantined -= len(released)
        return ChunkResult(chunk=req.chunk, counts=counts)

    @staticmethod
    def _clean(rows: list[tuple[int, dict[str, Any]]], region: str | None, received_at: datetime) -> CleanBatch:
        columns = column_map([h for h in (rows[0][1] if rows else {})])
        return clean_batch(rows, region=region, received_at=received_at, columns=columns)

    async def _set_row_outcomes(self, import_id: uuid.UUID, outcomes: dict[int, tuple[str, uuid.UUID | None]]) -> None:
        if not outcomes:
            return
        numbers = sorted(outcomes)
        await self._session.execute(_SET_ROW_OUTCOMES, {
            "import_id": import_id, "row_numbers": numbers,
            "outcomes": [outcomes[n][0] for n in numbers], "contact_ids": [outcomes[n][1] for n in numbers],
        })

    # ---- contacts and companies ------------------------------------------------------------
    async def _existing(self, tenant_id: uuid.UUID, emails: list[str]) -> dict[str, ExistingContact]:
        """Live contacts with these emails (compared lower-cased), locked until the chunk commits."""
        if not emails:
            return {}
        rows = (await self._session.execute(
            select(Contact, Company.domain)
            .outerjoin(Company, Company.id == Contact.company_id)
            .where(Contact.tenant_id == tenant_id, Contact.deleted_at.is_(None),
                   func.lower(Contact.email).in_(emails))
            .order_by(Contact.id)  # one lock order for every import: concurrent imports do not deadlock here
            .with_for_update(of=Contact)
        )).all()
        found: dict[str, ExistingContact] = {}
        for contact, domain in rows:
            properties = dict(contact.properties or {})
            found.setdefault(contact.email.lower(), ExistingContact(
                id=str(contact.id), email=contact.email, company_id=contact.company_id,
                values={"phone": contact.phone, "first_name": contact.first_name, "last_name": contact.last_name,
                        "job_title": contact.job_title, "lifecycle_stage": contact.lifecycle_stage,
                        "company_domain": domain, "company_name": properties.get("company_name")},
                phone_extension=properties.get("phone_extension"),
                utm=dict(contact.utm or {}), properties=properties,
                field_modified_at=dict(contact.field_modified_at or {}), updated_at=contact.updated_at,
            ))
        return found

    async def _companies(self, tenant_id: uuid.UUID, contacts: list[MergedContact]) -> dict[str, uuid.UUID]:
        """domain -> live company id, creating the missing ones (named by the newest row that names one)."""
        names: dict[str, str] = {}
        for c in contacts:
            domain = c.values.get("company_domain")
            if domain:
                names[domain] = c.values.get("company_name") or names.get(domain) or domain
        if not names:
            return {}
        await self._session.execute(
            insert(Company)
            .values([{"id": uuid.uuid4(), "tenant_id": tenant_id, "name": name, "domain": domain, "source": "import"}
                     for domain, name in sorted(names.items())])
            .on_conflict_do_nothing(index_elements=["tenant_id", "domain"], index_where=_LIVE_DOMAIN)
        )
        rows = await self._session.execute(
            select(Company.domain, Company.id)
            .where(Company.tenant_id == tenant_id, Company.deleted_at.is_(None), Company.domain.in_(sorted(names)))
        )
        return {domain: company_id for domain, company_id in rows.all()}

    async def _write(self, record: ContactImport, batch: CleanBatch) -> _Written:
        tenant_id, import_id = record.tenant_id, record.id
        written = _Written()
        if not batch.contacts:
            return written
        ref = functools.partial(row_ref, import_id)
        todo = plan(batch, await self._existing(tenant_id, batch.emails), ref)
        companies = await self._companies(tenant_id, batch.contacts)
        new_rows = []
        for c in todo.inserts:
            properties: dict[str, Any] = dict(c.properties)
            if c.values.get("company_name"):
                properties["company_name"] = c.values["company_name"]
            if c.phone_extension:
                properties["phone_extension"] = c.phone_extension
            refs = merged_from_refs(c, ref, into_existing=False)
            if refs:
                properties["merged_from"] = refs
            new_rows.append({
                "id": uuid.uuid4(), "tenant_id": tenant_id, "email": c.email, "phone": c.values["phone"],
                "first_name": c.values["first_name"], "last_name": c.values["last_name"],
                "job_title": c.values["job_title"], "lifecycle_stage": c.values["lifecycle_stage"],
                "company_id": companies.get(c.values["company_domain"] or ""), "utm": c.utm,
                "properties": properties, "source": "import",
                "field_modified_at": {k: t.isoformat() for k, t in c.field_times.items()},
            })
        late: list[MergedContact] = []
        if new_rows:
            returned = await self._session.execute(
                insert(Contact).values(new_rows)
                .on_conflict_do_nothing(index_elements=["tenant_id", "email"], index_where=_LIVE)
                .returning(Contact.email, Contact.id)
            )
            ids = dict(returned.all())
            for c in todo.inserts:
                if c.email in ids:
                    written.inserted += 1
                    written.merged += len(c.row_numbers) - 1
                    for n in c.row_numbers:
                        written.outcomes[n] = ("inserted" if n == c.row_numbers[0] else "merged", ids[c.email])
                else:
                    late.append(c)  # another writer stored this email after our lookup: merge into theirs
        updates = list(todo.updates)
        if late:
            stored = await self._existing(tenant_id, [c.email for c in late])
            for c in late:
                target = stored[c.email]
                updates.append((target, c, merge_into_existing(target, c, merged_from_refs(c, ref, into_existing=True))))
        params = []
        for target, c, change in updates:
            written.merged += len(c.row_numbers)
            for n in c.row_numbers:
                written.outcomes[n] = ("merged", uuid.UUID(target.id))
            if not change.changed:
                continue
            properties = dict(change.properties)
            if change.values.get("company_name"):
                properties["company_name"] = change.values["company_name"]
            if change.phone_extension:
                properties["phone_extension"] = change.phone_extension
            else:
                properties.pop("phone_extension", None)
            domain = change.values.get("company_domain")
            company_id = target.company_id
            if domain and domain != target.values.get("company_domain"):
                company_id = companies.get(domain, company_id)
            params.append({
                "id": uuid.UUID(target.id), **{k: change.values[k] for k in
                                                ("phone", "first_name", "last_name", "job_title", "lifecycle_stage")},
                "company_id": company_id, "utm": change.utm, "properties": properties,
                "field_modified_at": change.field_modified_at,
            })
        if params:
            await self._session.execute(_UPDATE_CONTACT, params)
        return written

    # ---- finishing and reading -----------------------------------------------------------------
    async def finish(self, import_id: uuid.UUID, *, failed: bool, error: str) -> ImportTotals:
        record = await self._locked(import_id)
        if record.status == "processing" or record.status == "received":
            record.status = "failed" if failed else "completed"
            record.error = error[:2000] if failed else None
            record.finished_at = func.now()
        await self._session.flush()
        await self._session.refresh(record)
        return ImportTotals(import_id=str(record.id), status=record.status, rows_total=record.rows_total or 0,
                            clean=record.clean, merged=record.merged, quarantined=record.quarantined)

    async def quarantine_page(self, import_id: uuid.UUID, *, status: str | None, after_row: int,
                              limit: int) -> list[ImportQuarantine]:
        query = select(ImportQuarantine).where(ImportQuarantine.import_id == import_id,
                                               ImportQuarantine.row_number > after_row)
        if status is not None:
            query = query.where(ImportQuarantine.status == status)
        return list(await self._session.scalars(query.order_by(ImportQuarantine.row_number).limit(limit)))

    async def contacts_page(self, tenant_id: uuid.UUID, *, after: uuid.UUID | None, limit: int,
                            email: str | None = None) -> list[tuple[Contact, str | None]]:
        query = (select(Contact, Company.domain).outerjoin(Company, Company.id == Contact.company_id)
                 .where(Contact.tenant_id == tenant_id, Contact.deleted_at.is_(None)))
        if after is not None:
            query = query.where(Contact.id > after)
        if email is not None:
            query = query.where(func.lower(Contact.email) == email.strip().lower())
        return list((await self._session.execute(query.order_by(Contact.id).limit(limit))).all())
