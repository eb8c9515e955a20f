"""Attacks on the API's authentication, authorization, tenant isolation and audit trail.

Each test plays one attack over HTTP against the real app, PostgreSQL and (where a campaign must
be live) Temporal, and asserts the API refuses it the way a client can rely on.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from joserfc.jwk import ECKey

from agency.security.access_tokens import issue_access_token
from agency.security.identities import create_service_identity, create_user
from agency.security.signing_keys import ActiveSigningKey, SigningKeyStore
from api_flow import BRIEF, start_campaign
from conftest import api_client, running_workers, sign_in

pytestmark = pytest.mark.integration

CAMPAIGN_URL = "/v1/campaigns/cmp_doesnotmatter"


def reason(response: httpx.Response) -> str:
    return response.json()["error"]["details"]["reason"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def signing_key(app) -> ActiveSigningKey:
    store: SigningKeyStore = app.state.authenticator.signing_keys
    async with app.state.sessions() as session, session.begin():
        return await store.signing_key(session, now=datetime.now(UTC))


def forge(key: ActiveSigningKey, settings, *, now: datetime | None = None, tenant: str | None = None) -> str:
    return issue_access_token(
        key,
        subject=f"user:{uuid.uuid4()}",
        tenant=tenant or str(uuid.uuid4()),
        roles=("owner",),
        now=now or datetime.now(UTC),
        settings=settings,
    ).token


@pytest.fixture
async def app_and_client(make_settings):
    """An anonymous client plus the app, for tests that mint their own credentials."""
    async with api_client(make_settings(), role=None) as api:
        yield api._transport.app, api  # ASGITransport keeps the app


# ---- access tokens -----------------------------------------------------------------------------
async def test_missing_and_malformed_credentials_are_401(app_and_client):
    _, api = app_and_client
    missing = await api.get(CAMPAIGN_URL)
    assert missing.status_code == 401 and reason(missing) == "missing_credentials"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    garbage = await api.get(CAMPAIGN_URL, headers=bearer("not.a.jwt"))
    assert garbage.status_code == 401 and reason(garbage) == "malformed"


async def test_expired_token_is_refused(app_and_client):
    app, api = app_and_client
    settings = app.state.settings
    old = forge(await signing_key(app), settings, now=datetime.now(UTC) - timedelta(seconds=settings.access_token_ttl_s + 120))
    response = await api.get(CAMPAIGN_URL, headers=bearer(old))
    assert response.status_code == 401 and reason(response) == "expired"


async def test_token_for_another_audience_is_refused(app_and_client):
    app, api = app_and_client
    other_api = app.state.settings.model_copy(update={"jwt_audience": "some-other-api"})
    response = await api.get(CAMPAIGN_URL, headers=bearer(forge(await signing_key(app), other_api)))
    assert response.status_code == 401 and reason(response) == "wrong_audience"


async def test_tampered_signature_and_claims_are_refused(app_and_client):
    app, api = app_and_client
    token = forge(await signing_key(app), app.state.settings)
    header, payload, signature = token.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    response = await api.get(CAMPAIGN_URL, headers=bearer(f"{header}.{payload}.{flipped}"))
    assert response.status_code == 401 and reason(response) == "bad_signature"
    # Escalating the role inside a genuine token breaks its signature too.
    claims = base64.urlsafe_b64decode(payload + "==").replace(b'"owner"', b'"admin"')
    forged_payload = base64.urlsafe_b64encode(claims).rstrip(b"=").decode()
    response = await api.get(CAMPAIGN_URL, headers=bearer(f"{header}.{forged_payload}.{signature}"))
    assert response.status_code == 401 and reason(response) == "bad_signature"


async def test_unknown_kid_and_alg_none_are_refused(app_and_client):
    app, api = app_and_client
    rogue = ActiveSigningKey(kid="rogue-key", algorithm="ES256", key=ECKey.generate_key("P-256"))
    response = await api.get(CAMPAIGN_URL, headers=bearer(forge(rogue, app.state.settings)))
    assert response.status_code == 401 and reason(response) == "unknown_kid"

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header, claims = b64(b'{"alg":"none","typ":"at+jwt"}'), b64(b'{"sub":"user:x"}')
    unsigned = f"{header}.{claims}."
    response = await api.get(CAMPAIGN_URL, headers=bearer(unsigned))
    assert response.status_code == 401 and reason(response) == "algorithm_not_allowed"


async def test_signing_key_rotation_logs_nobody_out(app_and_client):
    app, api = app_and_client
    token = await sign_in(api, app, tenant="rotation-co", role="viewer")
    store: SigningKeyStore = app.state.authenticator.signing_keys
    old_kid = (await signing_key(app)).kid
    async with app.state.sessions() as session, session.begin():
        await store.rotate(session, now=datetime.now(UTC))
    new_token = await sign_in(api, app, tenant="rotation-co", role="viewer")

    jwks = (await api.get("/.well-known/jwks.json")).json()
    kids = {key["kid"] for key in jwks["keys"]}
    new_kid = (await signing_key(app)).kid
    assert {old_kid, new_kid} <= kids and old_kid != new_kid
    assert all("d" not in key for key in jwks["keys"])  # public halves only
    for access in (token, new_token):
        response = await api.get("/v1/campaigns/cmp_missing", headers=bearer(access))
        assert response.status_code == 404, response.text  # authenticated; the campaign is unknown


# ---- refresh tokens ----------------------------------------------------------------------------
async def _password_login(api, app, tenant: str, role: str = "marketer") -> dict:
    email, password = f"{uuid.uuid4().hex[:8]}@{tenant}.test", uuid.uuid4().hex * 2
    async with app.state.sessions() as session, session.begin():
        await create_user(session, tenant_slug=tenant, email=email, role=role, password=password)
    response = await api.post(
        "/v1/auth/token", data={"grant_type": "password", "tenant": tenant, "username": email, "password": password}
    )
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    return response.json()


async def test_refresh_rotates_and_reuse_revokes_the_family(app_and_client):
    app, api = app_and_client
    first = await _password_login(api, app, "refresh-co")
    second = (await api.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
    assert second["refresh_token"] != first["refresh_token"]

    # An attacker replays the stolen, already-used first token: refused, and the family dies...
    replay = await api.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # ...so the legitimate holder's current token is dead too.
    victim = await api.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert victim.status_code == 400 and "revoked" in victim.json()["error_description"]


async def test_logout_revokes_the_refresh_token(app_and_client):
    app, api = app_and_client
    tokens = await _password_login(api, app, "logout-co")
    assert (await api.post("/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})).status_code == 204
    after = await api.post(
        "/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"


async def test_wrong_password_is_invalid_grant_without_saying_why(app_and_client):
    _, api = app_and_client
    response = await api.post(
        "/v1/auth/token", data={"grant_type": "password", "tenant": "nobody", "username": "a@b.c", "password": "x" * 12}
    )
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "wrong tenant, username or password"}
    unsupported = await api.post("/v1/auth/token", data={"grant_type": "implicit"})
    assert unsupported.status_code == 400 and unsupported.json()["error"] == "unsupported_grant_type"


async def test_login_brute_force_is_rate_limited(make_settings):
    settings = make_settings(rate_limit_login_burst=3, rate_limit_login_per_minute=1)
    from api.app import create_app

    app = create_app(settings)
    attacker = f"203.0.113.{uuid.uuid4().int % 250 + 1}"  # a fresh address: its own bucket
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(attacker, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://agency.test") as api:
            statuses = []
            for attempt in range(5):
                response = await api.post(
                    "/v1/auth/token",
                    data={"grant_type": "password", "tenant": "acme", "username": f"u{attempt}@x.test", "password": "guess-guess-guess"},
                )
                statuses.append(response.status_code)
    assert statuses == [400, 400, 400, 429, 429]
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["RateLimit-Remaining"] == "0"


# ---- service identities (client credentials) --------------------------------------------------
async def test_client_credentials_grant_and_agent_scope_limits(app_and_client):
    app, api = app_and_client
    async with app.state.sessions() as session, session.begin():
        creds = await create_service_identity(
            session, tenant_slug="agents-co", name=f"budget-{uuid.uuid4().hex[:6]}", scopes=["agent:budget"]
        )
    granted = await api.post(
        "/v1/auth/token", data={"grant_type": "client_credentials"}, auth=(creds.client_id, creds.client_secret)
    )
    assert granted.status_code == 200, granted.text
    body = granted.json()
    assert body["token_type"] == "Bearer" and "refresh_token" not in body and body["scope"] == "agent:budget"
    token = body["access_token"]
    # The budget agent may read campaigns but not approve content.
    assert (await api.get("/v1/campaigns/cmp_missing", headers=bearer(token))).status_code == 404
    approve = await api.post(
        "/v1/campaigns/cmp_missing/approvals", json={"item_id": "x", "decision": "approve"}, headers=bearer(token)
    )
    assert approve.status_code == 403 and approve.json()["error"]["code"] == "forbidden"

    wrong = await api.post(
        "/v1/auth/token", data={"grant_type": "client_credentials"}, auth=(creds.client_id, "not-the-secret")
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    beyond = await api.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials", "scope": "agent:publisher"},
        auth=(creds.client_id, creds.client_secret),
    )
    assert beyond.status_code == 400 and beyond.json()["error"] == "invalid_scope"


# ---- API keys ----------------------------------------------------------------------------------
async def test_api_key_lifecycle_rotation_overlap_and_revocation(make_settings):
    async with (
        api_client(make_settings(), tenant="keys-co", role="admin") as admin,
        httpx.AsyncClient(transport=admin._transport, base_url=admin.base_url) as machine,
    ):
        created = await admin.post("/v1/api-keys", json={"name": "reporting", "scopes": ["agent:analyst"]})
        assert created.status_code == 201, created.text
        key = created.json()
        assert key["key"].startswith("agk_live_")
        listed = (await admin.get("/v1/api-keys")).json()
        assert [k["id"] for k in listed] == [key["id"]] and "key" not in listed[0]

        as_key = {"X-API-Key": key["key"]}
        assert (await machine.get("/v1/campaigns/cmp_missing", headers=as_key)).status_code == 404

        rotated = await admin.post(f"/v1/api-keys/{key['id']}/rotate", json={"overlap_seconds": 2})
        assert rotated.status_code == 201, rotated.text
        successor = rotated.json()
        # Inside the overlap both keys work...
        assert (await machine.get("/v1/campaigns/cmp_missing", headers=as_key)).status_code == 404
        new_key = {"Authorization": f"Bearer {successor['key']}"}
        assert (await machine.get("/v1/campaigns/cmp_missing", headers=new_key)).status_code == 404
        await asyncio.sleep(2.2)
        # ...after it only the new one.
        old = await machine.get("/v1/campaigns/cmp_missing", headers=as_key)
        assert old.status_code == 401 and reason(old) == "api_key_rotated_out"
        assert (await machine.get("/v1/campaigns/cmp_missing", headers=new_key)).status_code == 404

        assert (await admin.delete(f"/v1/api-keys/{successor['id']}")).status_code == 204
        revoked = await machine.get("/v1/campaigns/cmp_missing", headers=new_key)
        assert revoked.status_code == 401 and reason(revoked) == "api_key_revoked"
        assert (await admin.delete(f"/v1/api-keys/{successor['id']}")).status_code == 404

        # No machine key may manage credentials, and unknown scopes are a 422.
        human_only = await admin.post("/v1/api-keys", json={"name": "x", "scopes": ["api_keys:manage"]})
        assert human_only.status_code == 422
        unknown = await admin.post("/v1/api-keys", json={"name": "x", "scopes": ["campaigns:everything"]})
        assert unknown.status_code == 422


async def test_marketer_cannot_manage_keys_and_keys_cannot_exceed_their_creator(make_settings):
    async with api_client(make_settings(), tenant="keys-co", role="marketer") as marketer:
        response = await marketer.post("/v1/api-keys", json={"name": "x", "scopes": ["campaigns:read"]})
        assert response.status_code == 403


# ---- RBAC, tenant isolation, audit -------------------------------------------------------------
async def test_viewer_cannot_approve_or_start(make_settings):
    async with api_client(make_settings(), tenant="acme-outdoor", role="viewer") as viewer:
        approve = await viewer.post("/v1/campaigns/cmp_any/approvals", json={"item_id": "x", "decision": "approve"})
        assert approve.status_code == 403
        assert approve.json()["error"]["details"]["permission"] == "content:approve"
        start = await viewer.post("/v1/campaigns", json=BRIEF)
        assert start.status_code == 403
        assert (await viewer.get("/v1/campaigns/cmp_any")).status_code == 404  # may read: gets past auth


async def test_tenant_a_cannot_read_modify_or_signal_tenant_b_campaign(make_settings, temporal_env):
    settings = make_settings()
    async with (
        running_workers(temporal_env.client, settings),
        api_client(settings, tenant="tenant-b", role="owner") as owner_b,
        api_client(settings, tenant="tenant-a", role="owner") as owner_a,
    ):
        campaign_id = await start_campaign(owner_b, channels=["email"])
        view = (await owner_b.get(f"/v1/campaigns/{campaign_id}")).json()
        assert view["workflow_id"] == f"tenant-b/{campaign_id}"  # the workflow id carries the tenant

        attempts = [
            await owner_a.get(f"/v1/campaigns/{campaign_id}"),
            await owner_a.get(f"/v1/campaigns/{campaign_id}/content"),
            await owner_a.get(f"/v1/campaigns/{campaign_id}/report"),
            await owner_a.post(f"/v1/campaigns/{campaign_id}/approvals", json={"item_id": "x", "decision": "approve"}),
            await owner_a.post(f"/v1/campaigns/{campaign_id}/pause"),
            await owner_a.post(f"/v1/campaigns/{campaign_id}/cancel"),
        ]
        assert [r.status_code for r in attempts] == [404] * 6
        # The 404 says nothing a missing campaign would not say.
        assert attempts[0].json() == {"error": {"code": "not_found", "message": f"campaign {campaign_id} not found"}}
        # Tenant B's campaign was untouched: B can still pause it, then cancels it.
        assert (await owner_b.post(f"/v1/campaigns/{campaign_id}/pause")).status_code == 202
        assert (await owner_b.post(f"/v1/campaigns/{campaign_id}/cancel")).status_code == 202

        # Each tenant's trail holds its own calls only, each with a request id.
        trail_b = (await owner_b.get("/v1/audit", params={"action": "campaigns.*"})).json()["events"]
        assert {(e["action"], e["outcome"]) for e in trail_b if e["subject_id"] == campaign_id} == {
            ("campaigns.create", "ok"), ("campaigns.pause", "ok"), ("campaigns.cancel", "ok")
        }
        assert all(e["request_id"] for e in trail_b)
        trail_a = (await owner_a.get("/v1/audit", params={"subject_id": campaign_id})).json()["events"]
        assert sorted(e["action"] for e in trail_a) == ["campaigns.cancel", "campaigns.pause", "campaigns.review"]
        assert {e["outcome"] for e in trail_a} == {"not_found"}


async def test_every_mutating_call_is_audited_with_request_id_and_outcome(make_settings):
    async with (
        api_client(make_settings(), tenant="audit-co", role="admin") as admin,
        api_client(make_settings(), tenant="audit-co", role="viewer") as viewer,
    ):
        denied = await viewer.post(
            "/v1/campaigns/cmp_x/approvals",
            json={"item_id": "x", "decision": "approve"},
            headers={"X-Request-ID": "req-denied-0001"},
        )
        assert denied.status_code == 403 and denied.headers["X-Request-ID"] == "req-denied-0001"
        created = await admin.post("/v1/api-keys", json={"name": "ci", "scopes": ["campaigns:read"]})
        request_id = created.headers["X-Request-ID"]

        page = (await admin.get("/v1/audit", params={"limit": 200})).json()
        by_request = {e["request_id"]: e for e in page["events"]}
        refused = by_request["req-denied-0001"]
        assert refused["action"] == "campaigns.review" and refused["outcome"] == "denied"
        assert refused["actor"].startswith("user:") and refused["subject_id"] == "cmp_x"
        made = by_request[request_id]
        assert made["action"] == "api_keys.create" and made["outcome"] == "ok"
        assert made["subject_id"] == created.json()["id"]
        # Exactly one record per call.
        assert sum(1 for e in page["events"] if e["request_id"] == request_id) == 1

        assert (await viewer.get("/v1/audit")).status_code == 403
