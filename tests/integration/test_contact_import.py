"""Contact imports end to end on PostgreSQL and Temporal: a messy 10,000-row CSV through the API,
counts that add up, quarantine with reasons, no duplicate live emails, a stored contact merged
into; re-processing under another phone region; a chunk retried after it finished (or while it
runs) counted once; the upload checks (422 / 413 / 415 / 403)."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from contextlib import asynccontextmanager
from datetime import datetime, timezone

import pytest

from api_flow import record_workflow_history
from sqlalchemy import func, select, text
from temporalio.worker import Worker

from activities.contact_import import ContactImportActivities
from agency.cleaning import csvfile, messy
from agency.cleaning.contracts import ChunkRequest, ContactImportInput
from agency.cleaning.pipeline import clean_batch
from agency.db.contact_imports import ContactImportRepository, row_ref
from agency.db.models import Tenant
from agency.db.models_contacts import Contact
from agency.db.models_imports import ContactImport, ContactImportRow, ImportQuarantine
from agency.db.repository import CampaignRepository
from api.contacts.service import MAX_UPLOAD_BYTES
from conftest import api_client, free_port, stack_settings
from workflows.contact_import import ContactImportWorkflow

pytestmark = pytest.mark.integration

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def settings(migrated_database_url, temporal_env, tmp_path, request):
    # No model server or channel: nothing here generates or publishes (dead ports, never dialled).
    dead = f"127.0.0.1:{free_port()}"
    return stack_settings(
        database_url=migrated_database_url, temporal=temporal_env, triton_url=dead, sandbox_url=f"http://{dead}",
        data_dir=tmp_path / "data", queue_suffix=request.node.name,
    )



@asynccontextmanager
async def import_worker(client, settings, sessions):
    async with Worker(client, task_queue=settings.queue_orchestration, workflows=[ContactImportWorkflow],
                      activities=ContactImportActivities(sessions).all()):
        yield


async def tenant_id(sessions, slug: str) -> uuid.UUID:
    async with sessions() as session:
        return await session.scalar(select(Tenant.id).where(Tenant.slug == slug))


async def import_state(api, import_id: str) -> dict:
    response = await api.get(f"/v1/contacts/imports/{import_id}")
    assert response.status_code == 200, response.text
    return response.json()


def assert_counts_add_up(state: dict, rows: int) -> None:
    assert state["rows_total"] == state["rows_done"] == rows
    assert state["clean"] + state["merged"] + state["quarantined"] == rows, state


async def quarantine_rows(api, import_id: str, status: str = "quarantined") -> list[dict]:
    rows, after = [], 0
    while True:
        page = await api.get(f"/v1/contacts/imports/{import_id}/quarantine",
                             params={"status": status, "after_row": after, "limit": 500})
        assert page.status_code == 200, page.text
        body = page.json()
        rows += body["rows"]
        if body["next_after_row"] is None:
            return rows
        after = body["next_after_row"]


async def test_messy_10k_import_adds_up_and_reprocessing_releases_uk_numbers(settings, sessions, temporal_env):
    slug = f"contacts-{uuid.uuid4().hex[:8]}"
    file = messy.generate(10_000, seed=7)
    parsed = list(csvfile.rows(file.text))
    # A contact the tenant already has, whose email the file repeats: the file merges into it.
    preview = clean_batch(parsed, region="US", received_at=datetime.now(timezone.utc))
    known = next(c for c in preview.contacts if c.values["first_name"] and c.values["job_title"])
    # A row to spot-check: its email appears once and its phone is a US national "(AAA) 555-LLLL".
    once = {c.email for c in preview.contacts if len(c.row_numbers) == 1}
    spot_row, spot_cells = next((n, cells) for n, cells in parsed
                                if cells["Email"] in once and re.fullmatch(r"\(\d{3}\) 555-\d{4}", cells["Phone"] or ""))

    async with api_client(settings, tenant=slug) as api, import_worker(temporal_env.client, settings, sessions):
        tenant = await tenant_id(sessions, slug)
        async with sessions() as session, session.begin():
            stored = Contact(tenant_id=tenant, email=known.email, job_title="Founder", source="crm",
                             field_modified_at={"job_title": "2030-01-01T00:00:00+00:00"})
            session.add(stored)
        started = await api.post("/v1/contacts/imports", params={"region": "US", "filename": "messy.csv"},
                                 content=file.text.encode(), headers=CSV)
        assert started.status_code == 202, started.text
        import_id, workflow_id = started.json()["import_id"], started.json()["workflow_id"]
        handle = temporal_env.client.get_workflow_handle_for(ContactImportWorkflow.run, workflow_id)
        totals = await handle.result()
        progress = await handle.query(ContactImportWorkflow.progress)
        assert (progress.rows_done, progress.chunks_done, progress.chunks_total, progress.finished) == (10_000, 10, 10, True)
        assert progress.counts.clean + progress.counts.merged + progress.counts.quarantined == 10_000

        state = await import_state(api, import_id)
        assert state["status"] == "completed" and state["progress"] == 1.0
        assert_counts_add_up(state, 10_000)
        assert (totals.clean, totals.merged, totals.quarantined) == (state["clean"], state["merged"], state["quarantined"])
        assert state["merged"] >= file.duplicate_rows // 2 and state["quarantined"] > len(file.uk_rows)

        held = await quarantine_rows(api, import_id)
        assert len(held) == state["quarantined"]
        assert all(r["reasons"] and all(x["field"] and x["code"] and x["message"] for x in r["reasons"]) for r in held)
        by_row = {r["row_number"]: r for r in held}
        assert file.uk_rows <= set(by_row)
        assert all({(x["field"], x["code"]) for x in by_row[n]["reasons"]} == {("phone", "invalid")} for n in file.uk_rows)

        async with sessions() as session:
            iid = uuid.UUID(import_id)
            outcomes = dict((await session.execute(
                select(ContactImportRow.outcome, func.count()).where(ContactImportRow.import_id == iid)
                .group_by(ContactImportRow.outcome))).all())
            assert outcomes == {"inserted": state["clean"], "merged": state["merged"], "quarantined": state["quarantined"]}
            duplicates = (await session.execute(
                select(func.lower(Contact.email), func.count()).where(Contact.tenant_id == tenant, Contact.deleted_at.is_(None))
                .group_by(func.lower(Contact.email)).having(func.count() > 1))).all()
            assert duplicates == []
            live = await session.scalar(select(func.count()).select_from(Contact).where(Contact.tenant_id == tenant))
            assert live == state["clean"] + 1  # every insert plus the stored contact
            phones = (await session.scalars(select(Contact.phone).where(Contact.tenant_id == tenant,
                                                                          Contact.phone.is_not(None)))).all()
            assert phones and all(E164.match(p) for p in phones)
            emails = (await session.scalars(select(Contact.email).where(Contact.tenant_id == tenant))).all()
            assert all(e == e.strip() and e.split("@")[1] == e.split("@")[1].lower() for e in emails)
            merged_into = await session.get(Contact, stored.id)
            assert merged_into.job_title == "Founder"  # edited after the file: kept
            assert merged_into.first_name == known.values["first_name"]  # empty: filled
            assert merged_into.properties["merged_from"] == [row_ref(import_id, n) for n in known.row_numbers]
            assert merged_into.version > 1

        spot = (await api.get("/v1/contacts", params={"email": spot_cells["Email"].upper()})).json()["contacts"]
        assert len(spot) == 1
        assert spot[0]["phone"] == "+1" + re.sub(r"\D", "", spot_cells["Phone"])
        assert spot[0]["email"] == spot_cells["Email"].strip().lower()

        # The rule change: the same quarantine under region GB reads the UK national numbers.
        denied = await api.post(f"/v1/contacts/imports/{import_id}/reprocess", params={"region": "XX"})
        assert denied.status_code == 422 and denied.json()["error"]["code"] == "region_invalid"
        again = await api.post(f"/v1/contacts/imports/{import_id}/reprocess", params={"region": "GB"})
        assert again.status_code == 202, again.text
        assert again.json()["pass_number"] == 1
        await temporal_env.client.get_workflow_handle(again.json()["workflow_id"]).result()
        await record_workflow_history(temporal_env.client, workflow_id, "contact_import_10k")
        after = await import_state(api, import_id)
        assert after["status"] == "completed" and after["region"] == "GB" and after["passes"] == 1
        assert_counts_add_up(after, 10_000)
        assert after["quarantined"] == state["quarantined"] - len(file.uk_rows)
        assert after["clean"] + after["merged"] == state["clean"] + state["merged"] + len(file.uk_rows)
        assert after["clean"] > state["clean"]
        released = {r["row_number"]: r for r in await quarantine_rows(api, import_id, "reprocessed")}
        assert set(released) == file.uk_rows
        still = await quarantine_rows(api, import_id)
        assert len(still) == after["quarantined"] and all(r["reasons"] for r in still)

        async with sessions() as session:
            uk_contacts = (await session.execute(
                select(Contact.phone).join(ContactImportRow, ContactImportRow.contact_id == Contact.id)
                .where(ContactImportRow.import_id == iid, ContactImportRow.row_number.in_(file.uk_rows)))).scalars().all()
            assert len(uk_contacts) == len(file.uk_rows) and all(p.startswith("+44") for p in uk_contacts)
            live_after = await session.scalar(select(func.count()).select_from(Contact).where(Contact.tenant_id == tenant))
            assert live_after == after["clean"] + 1


async def test_a_chunk_is_written_once_however_often_it_runs(sessions):
    """Two attempts at one chunk at the same time, then a third after it finished: one write, one count."""
    slug = f"contacts-{uuid.uuid4().hex[:8]}"
    async with sessions() as session, session.begin():
        tenant = (await CampaignRepository(session).ensure_tenant(slug)).id
        body = messy.generate(250, seed=5).text.encode()
        record = await ContactImportRepository(session).create(tenant, filename="a.csv", region="US", upload=body)
        import_id = str(record.id)
    activities = ContactImportActivities(sessions)
    staged = await activities.stage_contact_import(ContactImportInput(import_id=import_id, chunk_rows=100))
    assert staged.rows_total == 250 and staged.chunks == [0, 1, 2]
    restaged = await activities.stage_contact_import(ContactImportInput(import_id=import_id, chunk_rows=100))
    assert restaged == staged

    request = ChunkRequest(import_id=import_id, pass_number=0, chunk=1, chunk_rows=100)
    first, second = await asyncio.gather(activities.process_contact_import_chunk(request),
                                         activities.process_contact_import_chunk(request))
    assert sorted([first.already_done, second.already_done]) == [False, True]
    assert first.counts == second.counts and first.counts.rows == 100
    third = await activities.process_contact_import_chunk(request)
    assert third.already_done and third.counts == first.counts

    async with sessions() as session:
        record = await session.get(ContactImport, uuid.UUID(import_id))
        assert record.rows_done == 100
        assert (record.clean, record.merged, record.quarantined) == (
            first.counts.clean, first.counts.merged, first.counts.quarantined)
        contacts = await session.scalar(select(func.count()).select_from(Contact).where(Contact.tenant_id == tenant))
        assert contacts == first.counts.clean
        held = await session.scalar(select(func.count()).select_from(ImportQuarantine)
                                    .where(ImportQuarantine.import_id == uuid.UUID(import_id)))
        assert held == first.counts.quarantined
        pending = await session.scalar(text(
            "SELECT count(*) FROM contact_import_rows WHERE import_id = :i AND outcome IS NULL"), {"i": import_id})
        assert pending == 150  # chunks 0 and 2 untouched


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


async def test_uploads_are_checked_before_anything_starts(settings, sessions):
    slug = f"contacts-{uuid.uuid4().hex[:8]}"
    async with api_client(settings, tenant=slug) as api:
        missing = await api.post("/v1/contacts/imports", content=_csv([["Name", "Phone"], ["Ann", "1"]]), headers=CSV)
        assert missing.status_code == 422
        error = missing.json()["error"]
        assert error["code"] == "missing_columns" and error["details"]["missing"] == ["email"]
        assert error["details"]["header"] == ["Name", "Phone"]

        twice = await api.post("/v1/contacts/imports", content=_csv([["Email", "E-mail"]]), headers=CSV)
        assert twice.status_code == 422 and twice.json()["error"]["details"]["duplicated"] == ["email"]
        latin = await api.post("/v1/contacts/imports", content="Email,Name\r\na@x.com,Ren\u00e9e\r\n".encode("latin-1"),
                               headers=CSV)
        assert latin.status_code == 422 and latin.json()["error"]["code"] == "encoding_invalid"
        region = await api.post("/v1/contacts/imports", params={"region": "ZZ"}, content=_csv([["Email"]]), headers=CSV)
        assert region.status_code == 422 and region.json()["error"]["code"] == "region_invalid"
        json_body = await api.post("/v1/contacts/imports", json={"email": "a@x.com"})
        assert json_body.status_code == 415
        too_big = await api.post("/v1/contacts/imports", content=b"Email\r\n" + b"a@example.com\r\n" * (MAX_UPLOAD_BYTES // 15 + 1),
                                 headers=CSV)
        assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "payload_too_large"

        assert (await api.get(f"/v1/contacts/imports/{uuid.uuid4()}")).status_code == 404
    async with sessions() as session:
        tenant = await tenant_id(sessions, slug)
        stored = await session.scalar(select(func.count()).select_from(ContactImport).where(ContactImport.tenant_id == tenant))
        assert stored == 0  # nothing refused was kept

    async with api_client(settings, tenant=slug, role="viewer") as viewer:
        assert (await viewer.get("/v1/contacts")).status_code == 200
        denied = await viewer.post("/v1/contacts/imports", content=_csv([["Email"], ["a@x.com"]]), headers=CSV)
        assert denied.status_code == 403
