"""Brand profiles over the API (versioned, idempotent, strict, per tenant) and the activity that
pins a campaign run to the version it used."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from activities.brand import BrandActivities
from agency.db.models import AuditEvent, BrandProfileRecord, Campaign
from agency.db.repository import CampaignRepository
from conftest import api_client, free_port, fresh_tenant, stack_settings

pytestmark = pytest.mark.integration

PROFILE = {
    "voice": "warm, practical, plain-spoken; no hype",
    "vocabulary_use": ["trail-tested", "waterproof"],
    "vocabulary_avoid": ["revolutionary"],
    "claims_needing_substantiation": ["waterproof for 8 hours"],
    "personas": [{"name": "Weekend hiker", "description": "25-45, hikes on Saturdays", "needs": ["dry feet"]}],
}


@pytest.fixture
def settings(migrated_database_url, temporal_env, tmp_path, request):
    # No model server or channel: nothing here generates or publishes (dead ports, never dialled).
    dead = f"127.0.0.1:{free_port()}"
    return stack_settings(
        database_url=migrated_database_url, temporal=temporal_env, triton_url=dead, sandbox_url=f"http://{dead}",
        data_dir=tmp_path / "data", queue_suffix=request.node.name,
    )



async def test_brand_profile_versions_are_created_once_per_change(settings, sessions):
    tenant = fresh_tenant("brand")
    async with api_client(settings, tenant=tenant) as api:
        missing = await api.get("/v1/brand")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert (await api.get("/v1/brand/versions")).json() == []

        first = await api.put("/v1/brand", json=PROFILE)
        assert first.status_code == 201, first.text
        assert first.json()["version"] == 1 and first.json()["created"] is True
        # The same profile again (even spelled with extra whitespace) is the current version, unchanged.
        again = await api.put("/v1/brand", json={**PROFILE, "voice": f"  {PROFILE['voice']}  "})
        assert again.status_code == 200, again.text
        assert again.json()["version"] == 1 and again.json()["created"] is False

        second = await api.put("/v1/brand", json={**PROFILE, "vocabulary_avoid": ["revolutionary", "game-changer"]})
        assert second.status_code == 201 and second.json()["version"] == 2
        # Returning to an older profile is a change too: a new version, the history stays intact.
        third = await api.put("/v1/brand", json=PROFILE)
        assert third.status_code == 201 and third.json()["version"] == 3

        current = (await api.get("/v1/brand")).json()
        assert current["version"] == 3
        assert {k: current[k] for k in PROFILE} == PROFILE
        versions = (await api.get("/v1/brand/versions")).json()
        assert [v["version"] for v in versions] == [1, 2, 3]
        assert len({v["created_by"] for v in versions}) == 1 and versions[0]["created_by"].startswith("user:")
        v2 = (await api.get("/v1/brand/versions/2")).json()
        assert v2["vocabulary_avoid"] == ["revolutionary", "game-changer"]
        assert (await api.get("/v1/brand/versions/4")).status_code == 404
        assert (await api.get("/v1/brand/versions/0")).status_code == 422

    # Each call that stored (or re-confirmed) a version left an audit record naming it.
    async with sessions() as session:
        tenant_id = (await CampaignRepository(session).ensure_tenant(tenant)).id
        events = (
            await session.scalars(
                select(AuditEvent).where(AuditEvent.tenant_id == tenant_id, AuditEvent.subject_type == "brand_profile")
                .order_by(AuditEvent.id)
            )
        ).all()
        assert [(e.action, e.detail) for e in events] == [
            ("brand.put", {"version": 1, "created": True}),
            ("brand.put", {"version": 1, "created": False}),
            ("brand.put", {"version": 2, "created": True}),
            ("brand.put", {"version": 3, "created": True}),
        ]
        await session.rollback()


async def test_brand_profile_validation_and_permissions(settings):
    tenant = fresh_tenant("brandval")
    async with api_client(settings, tenant=tenant) as api:
        for bad, field in (
            ({**PROFILE, "voice": ""}, "voice"),
            ({**PROFILE, "voice": "v" * 501}, "voice"),
            ({**PROFILE, "vocabulary_avoid": ["ok", "  "]}, "1"),
            ({**PROFILE, "personas": [{"name": "No description"}]}, "description"),
            ({**PROFILE, "mood": "sunny"}, "mood"),  # unknown fields are refused, not ignored
            ({**PROFILE, "version": 7}, "version"),  # the server numbers versions
            ({**PROFILE, "claims_needing_substantiation": "one claim"}, "claims_needing_substantiation"),
        ):
            response = await api.put("/v1/brand", json=bad)
            assert response.status_code == 422, (bad, response.text)
            error = response.json()["error"]
            assert error["code"] == "validation_error"
            assert field in {f["loc"][-1] for f in error["fields"]}, error
        assert (await api.get("/v1/brand")).status_code == 404  # nothing refused was stored
        assert (await api.put("/v1/brand", json=PROFILE)).status_code == 201

    async with api_client(settings, tenant=tenant, role="viewer") as viewer:
        refused = await viewer.put("/v1/brand", json={**PROFILE, "voice": "shouty"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        assert (await viewer.get("/v1/brand")).json()["voice"] == PROFILE["voice"]

    # Another tenant sees none of it, and numbers its own versions from 1.
    async with api_client(settings, tenant=fresh_tenant("brandother")) as other:
        assert (await other.get("/v1/brand")).status_code == 404
        assert (await other.get("/v1/brand/versions/1")).status_code == 404
        assert (await other.get("/v1/brand/versions")).json() == []
        mine = await other.put("/v1/brand", json={**PROFILE, "voice": "dry and exact"})
        assert mine.json()["version"] == 1


async def test_campaign_records_the_brand_version_it_loaded_once(sessions):
    tenant = fresh_tenant("brandact")
    campaign_id = f"cmp_{uuid.uuid4().hex[:20]}"
    bare_id = f"cmp_{uuid.uuid4().hex[:20]}"
    async with sessions() as session, session.begin():
        repo = CampaignRepository(session)
        for cid in (campaign_id, bare_id):
            await repo.create_campaign(cid, tenant, "Boots", {"tenant": tenant}, f"{tenant}/{cid}")
    activities = BrandActivities(sessions)

    # No profile yet: nothing to pin, and the campaign runs without brand rules.
    assert await activities.load_brand_profile(bare_id) is None

    from agency.db.brand import BrandRepository

    async with sessions() as session, session.begin():
        tenant_id = (await CampaignRepository(session).ensure_tenant(tenant)).id
        await BrandRepository(session).save(tenant_id, {"voice": "calm", "vocabulary_avoid": ["hype"]}, created_by="t")
    loaded = await activities.load_brand_profile(campaign_id)
    assert loaded is not None
    assert (loaded.tenant, loaded.version, loaded.voice, loaded.vocabulary_avoid) == (tenant, 1, "calm", ["hype"])

    # A newer profile arrives; a retried load still returns the version this run started with.
    async with sessions() as session, session.begin():
        await BrandRepository(session).save(tenant_id, {"voice": "loud", "vocabulary_avoid": []}, created_by="t")
    retried = await activities.load_brand_profile(campaign_id)
    assert retried == loaded
    async with sessions() as session:
        pinned = await session.scalar(select(Campaign.brand_version).where(Campaign.id == campaign_id))
        newest = await session.scalar(
            select(BrandProfileRecord.version).where(BrandProfileRecord.tenant_id == tenant_id)
            .order_by(BrandProfileRecord.version.desc()).limit(1)
        )
        assert (pinned, newest) == (1, 2)

    from temporalio.exceptions import ApplicationError

    with pytest.raises(ApplicationError) as unknown:
        await activities.load_brand_profile("cmp_does_not_exist")
    assert unknown.value.non_retryable
