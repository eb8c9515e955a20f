"""Schemathesis fuzzes every operation of the OpenAPI schema, signed in as a tenant owner, against
a real API process (PostgreSQL, Temporal, Triton): no 5xx, and every response matches the schema.

Bounded (``--max-examples``, no stateful phase) so it fits in CI; campaigns it starts wait for
generation (no inference worker), so nothing heavy runs behind them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest

from agency.demo import sign_in_local_owner
from conftest import free_port, running_workers, settings_env, start_api, wait_healthy

pytestmark = pytest.mark.integration

MAX_EXAMPLES = int(os.environ.get("AGENCY_SCHEMATHESIS_EXAMPLES", "25"))


async def test_schemathesis_finds_no_server_errors_or_schema_violations(make_settings, temporal_env, tmp_path):
    settings = make_settings(api_workflow_rpc_timeout_s=5.0)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp_path / "api.log"
    api = start_api(settings_env(settings), port, log)
    # Orchestration and integration workers answer queries and updates; no inference worker, so
    # the campaigns the fuzzer starts wait at generation instead of loading the CPU.
    workers = running_workers(temporal_env.client, settings, kinds=("orchestration", "integrations"))
    await workers.__aenter__()
    try:
        wait_healthy(base_url, api, log)
        token = await asyncio.to_thread(sign_in_local_owner, settings, base_url, f"fuzz-{uuid.uuid4().hex[:6]}")
        # Asynchronously: the workers run on this event loop while schemathesis works.
        fuzzer = await asyncio.create_subprocess_exec(
            *[
                str(Path(sys.executable).with_name("st")),
                "--config-file", str(Path(__file__).with_name("schemathesis.toml")),
                "run", f"{base_url}/openapi.json",
                "--header", f"Authorization: Bearer {token}",
                "--phases", "examples,coverage,fuzzing",
                "--max-examples", str(MAX_EXAMPLES),
                "--seed", "20261129",
                "--workers", "1",
                "--request-timeout", "30",
                "--generation-database", "none",
                # Our bearer token only; no generated values for the security schemes.
                "--generation-with-security-parameters", "false",
                "--no-color",
                "--output-sanitize", "true",
            ],
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(fuzzer.communicate(), timeout=900)
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    finally:
        api.terminate()
        api.wait(15)
        await workers.__aexit__(None, None, None)
    (tmp_path / "schemathesis.txt").write_text(stdout + stderr)
    report = stdout[-6000:] + stderr[-2000:]
    assert fuzzer.returncode == 0, f"schemathesis failed:\n{report}\n--- API log tail ---\n{log.read_text()[-3000:]}"
    assert "No issues found" in stdout or "passed" in stdout, report
