"""What authentication, rate limiting and the audit layer cost an authenticated read.

Serves ``GET /v1/campaigns/{id}/content`` (a real campaign with content in PostgreSQL) from the
real app in this process and measures requests/s three ways in the same run, interleaved round
by round so machine noise hits all of them alike:

* ``baseline``: the route with authentication replaced by a fixed caller (same handler, same
  queries, same middleware), i.e. the route "without auth";
* ``jwt``: a signed access token, verified per request, plus the tenant and identity rate-limit
  takes in PostgreSQL;
* ``api_key``: an API key, looked up and verified in PostgreSQL per request, plus the takes.

Prints the ratio of each to the baseline; the goal is auth + rate limit + audit <= 25% of
throughput (ratio >= 0.75). Reads write no audit record; the middleware still runs in every
variant. Rate limits are raised so no request is refused: each take costs what it always costs.

    .venv/bin/python bench/auth_overhead.py [--requests 400 --concurrency 8 --rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agency.db.migrate import upgrade_head  # noqa: E402
from agency.db.repository import CampaignRepository  # noqa: E402
from agency.db.session import normalize_database_url  # noqa: E402
from agency.security.api_keys import create_api_key  # noqa: E402
from agency.security.identities import create_user  # noqa: E402
from agency.security.rbac import Principal  # noqa: E402
from agency.services.postgres import start_embedded_postgres, stop_embedded_postgres  # noqa: E402
from agency.settings import Settings  # noqa: E402
from api.app import create_app  # noqa: E402
from api.auth.principal import authenticate  # noqa: E402

TENANT = "bench-auth"
ITEMS = 6


async def seed(app) -> tuple[str, str, str, str]:
    """A campaign with content, an owner (email, password) and an API key; returns their handles."""
    campaign_id = f"cmp_{uuid.uuid4().hex[:20]}"
    email, password = f"owner-{uuid.uuid4().hex[:6]}@{TENANT}.test", uuid.uuid4().hex * 2
    async with app.state.sessions() as session, session.begin():
        repo = CampaignRepository(session)
        campaign = await repo.create_campaign(
            campaign_id=campaign_id, tenant_slug=TENANT, name="bench", brief={"tenant": TENANT}, workflow_id=f"{TENANT}/{campaign_id}"
        )
        for n in range(ITEMS):
            await repo.save_content_version(
                item_id=f"{campaign_id}:blog:{n}", campaign_id=campaign_id, channel="blog", format="post",
                publish_on=date(2027, 1, 1), version=1, title=f"Post {n}", body="Lorem ipsum " * 40,
                model="bench", prompt_tokens=100, completion_tokens=120, compliance={"passed": True},
                approval_state="pending",
            )
        await create_user(session, tenant_slug=TENANT, email=email, role="owner", password=password)
        key = await create_api_key(
            session, tenant_id=campaign.tenant_id, name="bench", scopes=["content:read"], now=datetime.now(UTC)
        )
    return campaign_id, email, password, key.key


async def measure(app, path: str, headers: dict[str, str], requests: int, concurrency: int) -> float:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench", headers=headers) as client:
        remaining = requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                response = await client.get(path)
                if response.status_code != 200:
                    raise RuntimeError(f"{path} -> {response.status_code}: {response.text[:300]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - started)


async def run(database_url: str, data_dir: Path, requests: int, concurrency: int, rounds: int) -> None:
    upgrade_head(database_url)
    settings = Settings(
        environment="test",
        database_url=database_url,
        data_dir=data_dir,
        rate_limit_tenant_per_minute=10_000_000,
        rate_limit_tenant_burst=1_000_000,
        rate_limit_identity_per_minute=10_000_000,
        rate_limit_identity_burst=1_000_000,
    )
    authed, unauthed = create_app(settings), create_app(settings)
    async with authed.router.lifespan_context(authed), unauthed.router.lifespan_context(unauthed):
        campaign_id, email, password, api_key = await seed(authed)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=authed), base_url="http://bench") as client:
            token = (await client.post("/v1/auth/token", data={
                "grant_type": "password", "tenant": TENANT, "username": email, "password": password,
            })).raise_for_status().json()["access_token"]
        tenant_id = await tenant_of(authed)
        fixed = Principal(subject="user:bench", tenant_id=tenant_id, kind="user", roles=("owner",))
        unauthed.dependency_overrides[authenticate] = lambda: fixed

        path = f"/v1/campaigns/{campaign_id}/content"
        variants = {
            "baseline": (unauthed, {}),
            "jwt": (authed, {"Authorization": f"Bearer {token}"}),
            "api_key": (authed, {"X-API-Key": api_key}),
        }
        for app, headers in variants.values():  # warm-up: connections, caches, key load
            await measure(app, path, headers, 40, concurrency)
        results: dict[str, list[float]] = {name: [] for name in variants}
        for r in range(rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                app, headers = variants[name]
                results[name].append(await measure(app, path, headers, requests, concurrency))
            print(f"round {r + 1}/{rounds}: " + "  ".join(f"{n} {results[n][-1]:7.1f} req/s" for n in variants), flush=True)

    base = statistics.median(results["baseline"])
    print(f"\nGET {path.replace(campaign_id, '{id}')}  ({ITEMS} items), {requests} requests x {rounds} rounds, concurrency {concurrency}")
    print(f"{'variant':10s} {'median req/s':>13s} {'ratio':>7s} {'cost':>7s}")
    for name in variants:
        median = statistics.median(results[name])
        print(f"{name:10s} {median:13.1f} {median / base:7.2f} {1 - median / base:7.0%}")
    worst = min(statistics.median(results[n]) for n in ("jwt", "api_key")) / base
    verdict = "meets" if worst >= 0.75 else "MISSES"
    print(f"\nauth + rate limit + audit keep {worst:.2f} of unauthenticated throughput: {verdict} the goal (>= 0.75)")


async def tenant_of(app) -> str:
    from sqlalchemy import select

    from agency.db.models import Tenant

    async with app.state.sessions() as session:
        return str(await session.scalar(select(Tenant.id).where(Tenant.slug == TENANT)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agency-bench-auth-") as tmp:
        external = os.environ.get("DATABASE_URL")
        pgdata = Path(tmp) / "pgdata"
        try:
            url = normalize_database_url(external) if external else start_embedded_postgres(pgdata, database="bench")
            asyncio.run(run(url, Path(tmp) / "data", args.requests, args.concurrency, args.rounds))
        finally:
            if not external:
                stop_embedded_postgres(pgdata)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
