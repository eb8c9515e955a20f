"""kill -9 of the worker mid-campaign, then a restart: the campaign completes and the providers
received each approved item exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from api_flow import finished, in_phase, start_campaign, wait_for
from conftest import fresh_tenant, api_client, sandbox_client, settings_env

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def spawn_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "workers", "--queue", "all"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def kill_hard(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


async def test_worker_killed_mid_campaign_recovers_and_publishes_exactly_once(make_settings, sandbox, tmp_path):
    settings = make_settings(activity_timeout_s=5, generation_timeout_s=30)
    env = settings_env(settings)
    log = tmp_path / "worker.log"
    worker = spawn_worker(env, log)
    try:
        async with api_client(settings, tenant=fresh_tenant()) as api:
            campaign_id = await start_campaign(api)

            # First crash: while content is being generated.
            await wait_for(api, campaign_id, in_phase("generating"), timeout_s=120)
            kill_hard(worker)
            worker = spawn_worker(env, log)

            await wait_for(api, campaign_id, in_phase("awaiting_approval"), timeout_s=300)
            content = (await api.get(f"/v1/campaigns/{campaign_id}/content")).json()
            pending = [c["item_id"] for c in content if c["approval_state"] == "pending"]
            assert pending, content

            # The email provider's next answer is lost after it accepted the email: the adapter must
            # retry with the same idempotency key and get the stored email back, not a second one.
            with sandbox_client(sandbox) as channel:
                lost = {"rules": [{"count": 1, "status_code": 503, "after_commit": True, "methods": ["POST"],
                                   "path_contains": "/emails"}]}
                assert channel.put("/_sandbox/faults/resend", json=lost).is_success

            for item_id in pending:
                response = await api.post(
                    f"/v1/campaigns/{campaign_id}/approvals",
                    json={"item_id": item_id, "decision": "approve"},
                )
                assert response.status_code == 200, response.text

            # Second crash: as soon as the channel has received the first publish.
            with sandbox_client(sandbox) as channel:
                for _ in range(400):
                    deliveries = channel.get("/v1/deliveries", params={"campaign_id": campaign_id}).json()["data"]
                    if deliveries:
                        break
                    await asyncio.sleep(0.05)
            kill_hard(worker)
            worker = spawn_worker(env, log)

            view = await wait_for(api, campaign_id, finished, timeout_s=300)
            assert view["status"] == "completed", view

        with sandbox_client(sandbox) as channel:
            posts = channel.get("/v1/posts", params={"campaign_id": campaign_id}).json()["data"]
            deliveries = channel.get("/v1/deliveries", params={"campaign_id": campaign_id}).json()["data"]
        assert Counter(p["item_id"] for p in posts) == Counter(pending)
        created = Counter(d["item_id"] for d in deliveries if d["outcome"] == "created")
        assert created == Counter(pending)
        # The lost response was retried with the same key and replayed, not re-created.
        assert any(d["outcome"] == "replayed" and d["channel"] == "email" for d in deliveries), deliveries
    finally:
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
