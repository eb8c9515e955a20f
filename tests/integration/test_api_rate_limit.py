"""Per-tenant and per-identity rate limits hold across API replicas: two uvicorn processes
share one set of buckets in PostgreSQL, so a client cannot double its quota by spreading calls."""

from __future__ import annotations

import uuid
from contextlib import ExitStack
from datetime import UTC, datetime

import httpx
import pytest

from agency.db.repository import CampaignRepository
from agency.security.api_keys import create_api_key
from conftest import free_port, settings_env, start_api, wait_healthy

pytestmark = pytest.mark.integration

async def new_api_key(db_engine, tenant: str, scopes: list[str]) -> str:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    async with async_sessionmaker(db_engine, expire_on_commit=False)() as session, session.begin():
        tenant_row = await CampaignRepository(session).ensure_tenant(tenant)
        issued = await create_api_key(
            session, tenant_id=tenant_row.id, name="load", scopes=scopes, now=datetime.now(UTC)
        )
    return issued.key


@pytest.mark.parametrize("bucket", ["tenant", "identity"])
async def test_limit_is_shared_by_two_api_processes(make_settings, db_engine, tmp_path, bucket):
    burst = 6
    limits = {f"rate_limit_{bucket}_burst": burst, f"rate_limit_{bucket}_per_minute": 1}
    settings = make_settings(**limits)
    key = await new_api_key(db_engine, f"limited-{uuid.uuid4().hex[:8]}", ["campaigns:read"])
    ports = [free_port(), free_port()]
    with ExitStack() as stack:
        for n, port in enumerate(ports):
            log = tmp_path / f"api{n}.log"
            proc = start_api(settings_env(settings), port, log)
            stack.callback(lambda p=proc: (p.terminate(), p.wait(15)))
            wait_healthy(f"http://127.0.0.1:{port}", proc, log)

        statuses: list[int] = []
        last: httpx.Response | None = None
        for n in range(2 * burst):  # alternate replicas: each alone would allow `burst`
            last = httpx.get(
                f"http://127.0.0.1:{ports[n % 2]}/v1/campaigns/cmp_missing", headers={"X-API-Key": key}, timeout=10
            )
            statuses.append(last.status_code)

    # 404: authenticated and counted, the campaign just doesn't exist.
    assert statuses == [404] * burst + [429] * burst, statuses
    assert last is not None
    body = last.json()["error"]
    assert body["code"] == "rate_limited" and bucket in body["message"]
    assert int(last.headers["Retry-After"]) >= 1
    assert last.headers["RateLimit-Limit"] == str(burst) and last.headers["RateLimit-Remaining"] == "0"
