"""A campaign publishes through the provider adapters while every provider misbehaves and its
worker is killed between "send" and "record": each approved item is delivered exactly once.

Faults, all at once: X answers a 429 storm (Retry-After), LinkedIn a 5xx burst, Resend answers
only after the client's timeout (the email is accepted, the answer is lost), WordPress loses the
answer to a create and Instagram the answer to a media_publish (both applied), Google Ads
throttles the metrics and budget calls. Every format goes to its provider's adapter; none uses
the channel protocol any more. The worker process is killed with SIGKILL as soon as the first
publish reaches a provider, and restarted. Counted on the sandbox side: its posts and delivery
log, and each face's request counters.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from api_flow import finished, in_phase, start_campaign, wait_for
from conftest import fresh_tenant, SANDBOX_TOKEN, api_client, sandbox_client, settings_env
from test_worker_crash import kill_hard, spawn_worker

pytestmark = pytest.mark.integration

FACE_FAULTS = {
    "x": [{"count": 6, "status_code": 429, "retry_after_s": 0.05, "methods": ["POST"]}],
    "linkedin": [{"count": 3, "status_code": 503, "methods": ["POST"]}],
    # Longer than the adapters' timeout (integration_timeout_s below): applied, answer never seen.
    "resend": [{"count": 1, "delay_s": 2.5, "methods": ["POST"]}],
    "google-ads": [{"count": 4, "status_code": 429, "retry_after_s": 0.05}],
    "wordpress": [{"count": 1, "status_code": 503, "after_commit": True, "methods": ["POST"]}],
    "instagram": [{"count": 1, "status_code": 503, "after_commit": True, "methods": ["POST"],
                   "path_contains": "/media_publish"}],
}


def provider_admin(sandbox) -> httpx.Client:
    return httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}, timeout=10)


def face_counts(admin: httpx.Client, face: str) -> Counter:
    return Counter(admin.get(f"/_sandbox/requests/{face}").raise_for_status().json()["counts"])


async def test_every_approved_item_is_delivered_exactly_once_through_faults_and_a_crash(
    make_settings, sandbox, tmp_path
):
    settings = make_settings(activity_timeout_s=8, generation_timeout_s=30, integration_timeout_s=1.0)
    env = settings_env(settings)
    log = tmp_path / "worker.log"
    worker = spawn_worker(env, log)
    try:
        with provider_admin(sandbox) as admin:
            before = {face: face_counts(admin, face) for face in FACE_FAULTS}
        async with api_client(settings, tenant=fresh_tenant()) as api:
            campaign_id = await start_campaign(api)
            await wait_for(api, campaign_id, in_phase("awaiting_approval"), timeout_s=300)
            content = (await api.get(f"/v1/campaigns/{campaign_id}/content")).json()
            pending = {c["item_id"]: c["format"] for c in content if c["approval_state"] == "pending"}
            # One item per provider: WordPress, X, LinkedIn, Instagram and Resend.
            assert {"blog_post", "x_post", "linkedin_post", "instagram_caption", "email"} <= set(pending.values()), content

            with provider_admin(sandbox) as admin:
                for face, rules in FACE_FAULTS.items():
                    admin.put(f"/_sandbox/faults/{face}", json={"rules": rules}).raise_for_status()

            for item_id in pending:
                response = await api.post(
                    f"/v1/campaigns/{campaign_id}/approvals", json={"item_id": item_id, "decision": "approve"}
                )
                assert response.status_code == 200, response.text

            # Kill the worker as soon as a provider has the first item, before it can be recorded.
            with sandbox_client(sandbox) as channel:
                for _ in range(600):
                    deliveries = channel.get("/v1/deliveries", params={"campaign_id": campaign_id}).json()["data"]
                    if any(d["operation"] == "publish" for d in deliveries):
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError("nothing reached a provider")
            kill_hard(worker)
            worker = spawn_worker(env, log)

            view = await wait_for(api, campaign_id, finished, timeout_s=300)
            assert view["status"] == "completed", view
            content = (await api.get(f"/v1/campaigns/{campaign_id}/content")).json()
            recorded = {c["item_id"]: c["external_id"] for c in content if c["approval_state"] == "approved"}

        with sandbox_client(sandbox) as channel:
            posts = channel.get("/v1/posts", params={"campaign_id": campaign_id}).json()["data"]
            deliveries = channel.get("/v1/deliveries", params={"campaign_id": campaign_id}).json()["data"]
        # Exactly once: one post per approved item, created once, and it is the one we recorded.
        assert Counter(p["item_id"] for p in posts) == Counter(pending.keys()), posts
        created = Counter(d["item_id"] for d in deliveries if d["operation"] == "publish" and d["outcome"] == "created")
        assert created == Counter(pending.keys()), deliveries
        assert {p["item_id"]: p["id"] for p in posts} == recorded

        with provider_admin(sandbox) as admin:
            after = {face: face_counts(admin, face) - before[face] for face in FACE_FAULTS}
            for face in FACE_FAULTS:
                admin.delete(f"/_sandbox/faults/{face}")
        # The faults really happened (counted by the sandbox): this is not a fair-weather run.
        assert sum(n for key, n in after["x"].items() if key.startswith("POST") and key.endswith(" 429")) == 6, after["x"]
        assert sum(n for key, n in after["linkedin"].items() if key.startswith("POST") and key.endswith(" 503")) == 3
        assert sum(n for key, n in after["google-ads"].items() if key.endswith(" 429")) == 4, after["google-ads"]
        assert any(key.startswith("POST") and "/emails" in key for key in after["resend"]), after["resend"]
        assert sum(n for key, n in after["wordpress"].items() if key.startswith("POST") and key.endswith(" 503")) == 1
        assert sum(n for key, n in after["instagram"].items()
                   if key.startswith("POST") and "/media_publish" in key and key.endswith(" 503")) == 1, after["instagram"]
        # Blog posts and captions are the providers' posts, not the channel's.
        assert {p["item_id"]: p["format"] for p in posts if p["format"] in ("blog_post", "instagram_caption")} == {
            i: f for i, f in pending.items() if f in ("blog_post", "instagram_caption")}
        assert not any(d["idempotency_key"] and d["idempotency_key"].endswith(":promote") for d in deliveries)
        # Metrics were read through Google Ads and GA4 after publishing.
        assert any("googleAds:search" in key and key.endswith(" 200") for key in after["google-ads"]), after["google-ads"]
    finally:
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(15)
            except Exception:
                worker.kill()
