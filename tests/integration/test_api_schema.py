"""Schemathesis fuzzes every operation of the OpenAPI schema, signed in as a tenant owner, against
a real API process (PostgreSQL, Temporal, Triton): no 5xx, and every response matches the schema.

Bounded (``--max-examples``, no stateful phase) so it fits in CI; campaigns it starts wait on a
task queue no worker polls, so nothing heavy runs behind them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from conftest import free_port, settings_env
from test_api_rate_limit import start_api, wait_healthy

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = int(os.environ.get("AGENCY_SCHEMATHESIS_EXAMPLES", "25"))


async def owner_token(base_url: str, database_url: str, tenant: str) -> str:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from agency.db.session import create_engine
    from agency.security.identities import create_user

    email, password = f"fuzz-{uuid.uuid4().hex[:8]}@{tenant}.test", uuid.uuid4().hex * 2
    engine = create_engine(database_url)
    try:
        async with async_sessionmaker(engine)() as session, session.begin():
            await create_user(session, tenant_slug=tenant, email=email, role="owner", password=password)
    finally:
        await engine.dispose()
    response = httpx.post(
        f"{base_url}/v1/auth/token",
        data={"grant_type": "password", "tenant": tenant, "username": email, "password": password},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


async def test_schemathesis_finds_no_server_errors_or_schema_violations(make_settings, tmp_path):
    # No workers poll this suffix's queues: started campaigns wait, they do not generate.
    settings = make_settings(queue_orchestration=f"fuzz-{uuid.uuid4().hex[:8]}")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp_path / "api.log"
    api = start_api(settings_env(settings), port, log)
    try:
        wait_healthy(base_url, api, log)
        token = await owner_token(base_url, settings.database_url, f"fuzz-{uuid.uuid4().hex[:6]}")
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("st")), "run", f"{base_url}/openapi.json",
                "--header", f"Authorization: Bearer {token}",
                "--checks", "all",
                # Needs a second user to act as another tenant; test_api_security covers it.
                "--exclude-checks", "object_level_authorization",
                "--phases", "examples,coverage,fuzzing",
                "--max-examples", str(MAX_EXAMPLES),
                "--seed", "20261129",
                "--workers", "1",
                "--request-timeout", "30",
                "--generation-database", "none",
                "--no-color",
                "--output-sanitize", "true",
            ],
            cwd=tmp_path, capture_output=True, text=True, timeout=900,
        )
    finally:
        api.terminate()
        api.wait(15)
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, f"schemathesis failed:\n{report}\n--- API log tail ---\n{log.read_text()[-3000:]}"
    assert "No issues found" in run.stdout or "passed" in run.stdout, report
