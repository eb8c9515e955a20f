"""Tenant provider credentials: encrypted at rest, rotated without downtime, never shown back.

Real PostgreSQL (migrated), the API in-process, and the sandbox's GA4 face as the provider whose
accepted tokens change under a running adapter.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from cryptography.fernet import Fernet
from sqlalchemy import select

from agency.db.models import AuditEvent, Tenant
from agency.db.models_integrations import IntegrationCredential
from agency.integrations.analytics import Ga4Analytics
from agency.integrations.credentials import (
    CredentialCipher,
    CredentialUndecryptable,
    TenantCredentialSource,
    reencrypt_credentials,
    store_credential,
    usable_credentials,
)
from agency.integrations.errors import ProviderAuthFailed
from agency.settings import Settings
from tests.integration.conftest import SANDBOX_TOKEN, Sandbox, api_client, free_port, fresh_tenant

pytestmark = pytest.mark.integration

PROPERTY = "424242"


@pytest.fixture
def settings(migrated_database_url: str, sandbox: Sandbox, tmp_path) -> Settings:
    # Built directly: nothing here needs Temporal or a model server (dead addresses, never dialled).
    dead = f"127.0.0.1:{free_port()}"
    return Settings(
        environment="test", data_dir=tmp_path / "data", database_url=migrated_database_url,
        temporal_address=dead, triton_url=dead, channel_base_url=sandbox.url, channel_token=SANDBOX_TOKEN,
        rate_limit_tenant_per_minute=60_000, rate_limit_tenant_burst=1_000,
        rate_limit_identity_per_minute=60_000, rate_limit_identity_burst=1_000,
        rate_limit_login_per_minute=60_000, rate_limit_login_burst=1_000,
    )



@pytest_asyncio.fixture(loop_scope="session")
async def admin(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=sandbox.url, headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}, timeout=10
    ) as client:
        try:
            yield client
        finally:
            await client.put("/_sandbox/credentials/ga4", json={"tokens": [SANDBOX_TOKEN]})


def token(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}"


async def tenant_id_of(sessions, slug: str) -> uuid.UUID:
    async with sessions() as session:
        return await session.scalar(select(Tenant.id).where(Tenant.slug == slug))


async def accept(admin: httpx.AsyncClient, *tokens: str) -> None:
    response = await admin.put("/_sandbox/credentials/ga4", json={"tokens": list(tokens)})
    assert response.status_code == 200, response.text


async def put_ga4(api: httpx.AsyncClient, access_token: str, overlap_seconds: int = 3_600) -> dict:
    response = await api.put(
        "/v1/integrations/ga4/credentials",
        json={"credential": {"access_token": access_token, "property_id": PROPERTY}, "overlap_seconds": overlap_seconds},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_secrets_are_encrypted_at_rest_and_never_returned(settings: Settings, sessions) -> None:
    slug = fresh_tenant("creds")
    secret = token("ads-access")
    developer = token("dev")
    async with api_client(settings, tenant=slug, role="admin") as api:
        saved = await api.put("/v1/integrations/google-ads/credentials", json={"credential": {
            "access_token": secret, "developer_token": developer, "customer_id": "123-456-7890",
        }})
        listing = await api.get("/v1/integrations")

    assert saved.status_code == 201, saved.text
    assert saved.json()["version"] == 1 and saved.json()["status"] == "active" and saved.json()["previous"] is None
    assert listing.status_code == 200
    assert listing.json()["integrations"][0]["provider"] == "google-ads"
    assert listing.json()["integrations"][0]["active_version"] == 1
    for text in (saved.text, listing.text):
        assert secret not in text and developer not in text

    tenant_id = await tenant_id_of(sessions, slug)
    async with sessions() as session:
        row = await session.scalar(select(IntegrationCredential).where(IntegrationCredential.tenant_id == tenant_id))
        audit = (await session.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == tenant_id, AuditEvent.subject_type == "integration_credential"
        ))).all()
    cipher = CredentialCipher.from_settings(settings)
    assert secret not in row.ciphertext and developer not in row.ciphertext and "1234567890" not in row.ciphertext
    assert row.key_id == cipher.primary_key_id
    assert cipher.decrypt(row.ciphertext) == {
        "access_token": secret, "developer_token": developer, "customer_id": "1234567890",
    }
    # One audit record for the PUT, naming the version but holding no secret.
    assert [a.subject_id for a in audit] == ["google-ads:v1"]
    assert secret not in json.dumps(audit[0].detail) and developer not in json.dumps(audit[0].detail)


async def test_credentials_are_validated_per_provider(settings: Settings) -> None:
    secret = token("leak-check")
    async with api_client(settings, tenant=fresh_tenant("creds"), role="owner") as api:
        missing = await api.put("/v1/integrations/google-ads/credentials",
                                json={"credential": {"access_token": secret, "customer_id": "1234567890"}})
        bad_id = await api.put("/v1/integrations/google-ads/credentials", json={"credential": {
            "access_token": secret, "developer_token": secret, "customer_id": "12-34"}})
        extra = await api.put("/v1/integrations/ga4/credentials", json={"credential": {
            "access_token": secret, "property_id": PROPERTY, "password": secret}})
        spaces = await api.put("/v1/integrations/ga4/credentials", json={"credential": {
            "access_token": f"{secret} {secret}", "property_id": PROPERTY}})
        unknown = await api.put("/v1/integrations/myspace/credentials",
                                json={"credential": {"access_token": secret}})
        listing = await api.get("/v1/integrations")

    for response in (missing, bad_id, extra, spaces, unknown):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "validation_error"
        assert secret not in response.text  # rejected input is not echoed back
    assert [f["loc"] for f in missing.json()["error"]["fields"]] == [["body", "credential", "developer_token"]]
    assert bad_id.json()["error"]["fields"][0]["loc"] == ["body", "credential", "customer_id"]
    assert extra.json()["error"]["fields"][0]["loc"] == ["body", "credential", "password"]
    assert listing.json() == {"integrations": []}  # nothing was stored


async def test_only_integration_managers_may_see_or_change_credentials(settings: Settings) -> None:
    slug = fresh_tenant("creds")
    async with api_client(settings, tenant=slug, role="owner") as owner:
        await put_ga4(owner, token("ga4"))
    for role in ("marketer", "viewer"):
        async with api_client(settings, tenant=slug, role=role) as api:
            put = await api.put("/v1/integrations/ga4/credentials",
                                json={"credential": {"access_token": token("x"), "property_id": PROPERTY}})
            listing = await api.get("/v1/integrations")
            retire = await api.post("/v1/integrations/ga4/credentials/1/retire")
        for response in (put, listing, retire):
            assert response.status_code == 403, (role, response.text)
            assert response.json()["error"]["details"] == {"permission": "integrations:manage"}


async def test_rotation_keeps_a_running_adapter_working_with_zero_failed_calls(
    settings: Settings, sessions, sandbox: Sandbox, admin: httpx.AsyncClient
) -> None:
    slug = fresh_tenant("creds")
    old, new, newer = token("old"), token("new"), token("newer")
    cipher = CredentialCipher.from_settings(settings)
    await accept(admin, old)
    async with api_client(settings, tenant=slug, role="owner") as api:
        await put_ga4(api, old)
        tenant_id = await tenant_id_of(sessions, slug)
        # A worker that reloads often, and one that only reloads when refused (a 401).
        quick = TenantCredentialSource(sessions, tenant_id, "ga4", cipher=cipher, ttl_s=0.2)
        slow = TenantCredentialSource(sessions, tenant_id, "ga4", cipher=cipher, ttl_s=3_600)
        outcomes = {"ok": 0, "failed": []}
        stop = asyncio.Event()

        async def keep_calling(source: TenantCredentialSource) -> None:
            async with Ga4Analytics(f"{sandbox.url}/ga4", source) as ga4:
                while not stop.is_set():
                    try:
                        await ga4.run_report(PROPERTY, date_ranges=[("today", "today")],
                                             dimensions=["sessionCampaignName"], metrics=["sessions"], limit=1)
                        outcomes["ok"] += 1
                    except Exception as error:  # noqa: BLE001  (every failure counts against the rotation)
                        outcomes["failed"].append(repr(error))
                    await asyncio.sleep(0.02)

        async def until(predicate, what: str) -> None:
            for _ in range(500):
                if predicate():
                    return
                await asyncio.sleep(0.02)
            raise AssertionError(f"timed out waiting for {what}: quick v{quick.version}, slow v{slow.version}, {outcomes}")

        await admin.delete("/_sandbox/requests/ga4")
        workers = [asyncio.create_task(keep_calling(s)) for s in (quick, quick, slow)]
        try:
            await until(lambda: outcomes["ok"] >= 5, "calls with the first credential")
            # 1. The provider accepts both; we store the new one; the quick worker moves over.
            await accept(admin, old, new)
            saved = await put_ga4(api, new)
            assert saved["version"] == 2 and saved["previous"]["status"] == "retiring"
            await until(lambda: quick.version == 2, "the quick worker to load version 2")
            assert slow.version == 1  # still on its cached credential, which still works
            # 2. The provider drops the old one: the slow worker's next 401 reloads version 2.
            await accept(admin, new)
            await until(lambda: slow.version == 2, "the slow worker to move after a 401")
            # 3. Version 3 is stored before the provider accepts it: the retiring version 2
            #    is the fallback, so calls keep working.
            await put_ga4(api, newer)
            mark = outcomes["ok"]
            await until(lambda: outcomes["ok"] >= mark + 20, "calls while version 3 is refused")
            # 4. The provider switches to version 3 only.
            await accept(admin, newer)
            mark = outcomes["ok"]
            await until(lambda: outcomes["ok"] >= mark + 20 and quick.version == slow.version == 3,
                        "both workers on version 3")
        finally:
            stop.set()
            await asyncio.gather(*workers)
        counts = (await admin.get("/_sandbox/requests/ga4")).json()["counts"]

        assert outcomes["failed"] == []
        # The switches really were exercised: the provider refused stale credentials along the way.
        assert sum(n for key, n in counts.items() if key.endswith(" 401")) >= 2
        assert sum(n for key, n in counts.items() if key.endswith(" 200")) == outcomes["ok"]

        # Explicit retire: version 2 stops being usable and loses its ciphertext; the active can't go.
        retired = await api.post("/v1/integrations/ga4/credentials/2/retire")
        active = await api.post("/v1/integrations/ga4/credentials/3/retire")
        missing = await api.post("/v1/integrations/ga4/credentials/9/retire")
        listing = (await api.get("/v1/integrations")).json()["integrations"][0]
    assert retired.status_code == 200 and retired.json()["status"] == "retired" and retired.json()["retired_at"]
    assert active.status_code == 409 and active.json()["error"]["code"] == "credential_in_use"
    assert missing.status_code == 404
    assert [(v["version"], v["status"]) for v in listing["versions"]] == [(3, "active"), (2, "retired"), (1, "retiring")]
    async with sessions() as session:
        rows = {r.version: r for r in await session.scalars(
            select(IntegrationCredential).where(IntegrationCredential.tenant_id == tenant_id))}
        usable = await usable_credentials(session, cipher, tenant_id, "ga4")
    assert rows[2].ciphertext is None and rows[3].ciphertext is not None
    assert [u.version for u in usable] == [3, 1]
    assert old not in repr(usable) and newer not in repr(quick)


async def test_a_tenant_without_credentials_gets_an_auth_error(sessions, settings: Settings, sandbox: Sandbox) -> None:
    async with api_client(settings, tenant=(slug := fresh_tenant("creds")), role="owner"):
        pass
    source = TenantCredentialSource(sessions, await tenant_id_of(sessions, slug), "ga4",
                                    cipher=CredentialCipher.from_settings(settings))
    async with Ga4Analytics(f"{sandbox.url}/ga4", source) as ga4:
        with pytest.raises(ProviderAuthFailed) as info:
            await ga4.run_report(PROPERTY, date_ranges=[("today", "today")], dimensions=[], metrics=["sessions"])
    assert info.value.code == "credential_missing"


async def test_fernet_key_rotation_reencrypts_every_secret(settings: Settings, sessions) -> None:
    old_key, new_key = Fernet.generate_key(), Fernet.generate_key()
    before, during = CredentialCipher([old_key]), CredentialCipher([new_key, old_key])
    slug = fresh_tenant("creds")
    async with api_client(settings, tenant=slug, role="owner"):
        pass
    tenant_id = await tenant_id_of(sessions, slug)
    secrets = [token("v1"), token("v2")]
    async with sessions() as session, session.begin():
        for secret in secrets:
            await store_credential(session, before, tenant_id, "ga4", {"access_token": secret, "property_id": PROPERTY},
                                   created_by="test")

    # The new key first, the old one still listed: everything stays readable meanwhile.
    async with sessions() as session:
        assert [u.secret["access_token"] for u in await usable_credentials(session, during, tenant_id, "ga4")] \
            == secrets[::-1]
    assert await reencrypt_credentials(sessions, during, tenant_id=tenant_id) == 2
    assert await reencrypt_credentials(sessions, during, tenant_id=tenant_id) == 0  # idempotent

    only_new = CredentialCipher([new_key])
    async with sessions() as session:
        rows = (await session.scalars(
            select(IntegrationCredential).where(IntegrationCredential.tenant_id == tenant_id))).all()
        assert {r.key_id for r in rows} == {only_new.primary_key_id}
        # The old key can be dropped: the new one alone reads every secret, the old one none.
        assert sorted(u.secret["access_token"] for u in await usable_credentials(session, only_new, tenant_id, "ga4")) \
            == sorted(secrets)
        with pytest.raises(CredentialUndecryptable):
            await usable_credentials(session, before, tenant_id, "ga4")
