"""CRM sync end to end: records/s from PostgreSQL to the CRM and back, against the CRM's own ceiling.

Starts the product's local stack (PostgreSQL, Temporal, the sandbox with its HubSpot face, the
worker processes; no Triton: the sync needs no model) on free ports in a throwaway folder, and
always stops it. Then:

1. out: N contacts in our store, a CrmSyncWorkflow started; time until every one is created in
   the CRM and linked (crm_id stored) -> records/s;
2. back: the CRM changes a property of all N (batch upserts, as its users' imports do), a
   webhook-style nudge; time until every change is in PostgreSQL -> records/s;
3. ceiling, same run, after the sync stopped: N fresh contacts straight to the sandbox with the
   same batch upserts the sync sends (one page after another, like the sync), and N records read
   back through the change search; records/s of each.

The ratios say how much of the CRM's raw throughput the durable sync keeps (per-page transactions,
cursors, snapshot decisions, workflow orchestration).

    .venv/bin/python bench/sync.py [--records 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select  # noqa: E402
from temporalio.client import Client  # noqa: E402

from agency.db.models_contacts import Contact  # noqa: E402
from agency.db.repository import CampaignRepository  # noqa: E402
from agency.db.session import create_engine, resolve_database_url, session_factory  # noqa: E402
from agency.integrations.crm import HubSpotCrm  # noqa: E402
from agency.integrations.http import bearer  # noqa: E402
from agency.settings import Settings, get_settings  # noqa: E402
from agency.supervisor import Stack  # noqa: E402
from agency.sync.contracts import CrmSyncQuery, CrmSyncSignal, CrmSyncStatus, crm_sync_workflow_id  # noqa: E402
from api.contacts_sync.service import crm_sync_input, ensure_crm_sync  # noqa: E402

TENANT = "bench-sync"
PAGE = 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_for(probe, what: str, timeout_s: float = 1800) -> float:
    """Seconds until ``probe()`` is true (polled every 50 ms)."""
    started = time.perf_counter()
    while not await probe():
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def bench(settings: Settings, records: int) -> None:
    engine = create_engine(resolve_database_url(settings))
    sessions = session_factory(engine)
    client = await Client.connect(settings.temporal_target, namespace=settings.temporal_namespace)
    crm = HubSpotCrm(settings.provider_url("hubspot"), bearer(settings.channel_token.get_secret_value()))
    try:
        async with sessions() as session, session.begin():
            tenant_id = (await CampaignRepository(session).ensure_tenant(TENANT)).id
            now = datetime.now(UTC).isoformat()
            await session.execute(insert(Contact), [
                {"id": uuid.uuid4(), "tenant_id": tenant_id, "email": f"c{i:06d}@bench.example", "first_name": f"C{i}",
                 "last_name": "Bench", "job_title": "Buyer", "lifecycle_stage": "lead", "source": "import",
                 "field_modified_at": {f: now for f in ("email", "first_name", "last_name", "job_title", "lifecycle_stage")}}
                for i in range(records)
            ])

        async def count(*conditions) -> int:
            async with sessions() as session:
                return await session.scalar(select(func.count()).select_from(Contact).where(
                    Contact.tenant_id == tenant_id, *conditions)) or 0

        # 1. out
        inp = crm_sync_input(settings, TENANT)
        inp.interval_s = 0.5
        print(f"out: {records} contacts, PostgreSQL -> CRM ...")
        await ensure_crm_sync(client, settings, inp)
        handle = client.get_workflow_handle(crm_sync_workflow_id(TENANT))

        async def all_linked() -> bool:
            return await count(Contact.crm_id.is_not(None)) == records

        out_s = await wait_for(all_linked, "every contact to be linked")

        # 2. back: the CRM's users change every record's job title.
        async with sessions() as session:
            keys = [str(i) for i in (await session.scalars(select(Contact.id).where(Contact.tenant_id == tenant_id))).all()]
        for start in range(0, len(keys), PAGE):
            await crm.batch_upsert("contacts", [(k, {"jobtitle": "Head of Buying"}) for k in keys[start:start + PAGE]])
        print(f"back: {records} CRM edits, CRM -> PostgreSQL ...")
        started = time.perf_counter()
        await handle.signal(CrmSyncSignal.CRM_CHANGED)

        async def all_pulled() -> bool:
            return await count(Contact.job_title == "Head of Buying") == records

        await wait_for(all_pulled, "every CRM edit to be pulled")
        back_s = time.perf_counter() - started
        status = await handle.query(CrmSyncQuery.STATUS, result_type=CrmSyncStatus)
        await handle.terminate("bench done")

        # 3. ceiling: the same CRM calls without the sync around them.
        print(f"ceiling: {records} batch upserts and change-search reads straight to the sandbox ...")
        marker = uuid.uuid4().hex[:8]
        since = datetime.now(UTC)
        started = time.perf_counter()
        for start in range(0, records, PAGE):
            await crm.batch_upsert("contacts", [
                (f"raw-{marker}-{i}", {"email": f"raw{i:06d}-{marker}@bench.example", "firstname": f"R{i}",
                                        "lastname": "Raw", "jobtitle": "Buyer", "lifecyclestage": "lead"})
                for i in range(start, min(records, start + PAGE))
            ])
        raw_out_s = time.perf_counter() - started
        started, read, after = time.perf_counter(), 0, None
        while True:
            page = await crm.search_modified_since("contacts", since, properties=["email", "jobtitle"], after=after,
                                                   limit=PAGE)
            read += len(page.records)
            if page.next_after is None:
                break
            after = page.next_after
        raw_back_s = time.perf_counter() - started

        out_rate, back_rate = records / out_s, records / back_s
        raw_out_rate, raw_back_rate = records / raw_out_s, read / raw_back_s
        print("\n=========== CRM sync throughput ===========")
        print(f"records:                      {records} contacts ({status.rounds} rounds completed when measured)")
        print(f"sync out  (PG -> CRM):        {out_s:8.2f} s -> {out_rate:8.1f} records/s")
        print(f"sync back (CRM -> PG):        {back_s:8.2f} s -> {back_rate:8.1f} records/s")
        print(f"sandbox batch upserts (raw):  {raw_out_s:8.2f} s -> {raw_out_rate:8.1f} records/s")
        print(f"sandbox change search (raw):  {raw_back_s:8.2f} s -> {raw_back_rate:8.1f} records/s ({read} read)")
        print(f"ratio out  sync/raw:          {out_rate / raw_out_rate:8.2f}")
        print(f"ratio back sync/raw:          {back_rate / raw_back_rate:8.2f}")
        print(f"sync totals:                  {status.totals}")
    finally:
        await crm.aclose()
        await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="agency-bench-sync-"))
    env = {"AGENCY_DATA_DIR": str(data_dir), "AGENCY_ENVIRONMENT": "local",
           # The sync needs no model server: point at a closed port so none is started.
           "AGENCY_TRITON_URL": f"127.0.0.1:{free_port()}"}
    for name in ("API", "SANDBOX", "TEMPORAL", "TEMPORAL_UI"):
        env[f"AGENCY_{name}_PORT"] = str(free_port())
    os.environ.update(env)
    get_settings.cache_clear()
    settings = get_settings()
    stack = Stack(settings, with_api=False, progress=lambda msg: print(f"  stack: {msg}"))
    try:
        stack.start()
        asyncio.run(bench(settings, args.records))
    finally:
        stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # the SDK's core threads can hold the process open (sdk-python #300)
