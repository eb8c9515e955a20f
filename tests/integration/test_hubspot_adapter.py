"""The HubSpot CRM adapter against the sandbox's HubSpot face over real HTTP.

The sandbox fixture is shared by the whole session: every test uses its own sync keys and
emails, its own circuit breaker, and clears the faults and settings it sets.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import pytest

from agency.integrations.crm import (
    SYNC_KEY_PROPERTY,
    CrmRecord,
    HubSpotCrm,
    parse_webhook_events,
    verify_webhook_signature,
)
from agency.integrations.errors import CircuitOpen, ProviderAuthFailed, ProviderRejected, ProviderUnavailable
from agency.integrations.http import bearer
from agency.integrations.reliability import CircuitBreaker, RetryPolicy
from tests.integration.conftest import SANDBOX_TOKEN, Sandbox, sandbox_client

# Short in-call backoff: the tests wait on the sandbox's Retry-After, not on our jitter.
FAST_RETRY = RetryPolicy(max_attempts=8, base_delay_s=0.01, max_delay_s=0.1, max_elapsed_s=10)


def tag() -> str:
    return uuid.uuid4().hex[:10]


@asynccontextmanager
async def crm_for(sandbox: Sandbox, *, credentials=None, retry: RetryPolicy = FAST_RETRY,
                  breaker: CircuitBreaker | None = None) -> AsyncIterator[HubSpotCrm]:
    # A private breaker per client: one test's outage never opens another test's circuit.
    async with HubSpotCrm(
        f"{sandbox.url}/hubspot",
        credentials or bearer(SANDBOX_TOKEN),
        timeout_s=5,
        retry=retry,
        breaker=breaker or CircuitBreaker("hubspot"),
    ) as crm:
        yield crm


@contextmanager
def faults(admin: httpx.Client, *rules: dict) -> Iterator[None]:
    admin.put("/_sandbox/faults/hubspot", json={"rules": list(rules)}).raise_for_status()
    try:
        yield
    finally:
        admin.delete("/_sandbox/faults/hubspot").raise_for_status()


def counts(admin: httpx.Client) -> Counter:
    response = admin.get("/_sandbox/requests/hubspot")
    response.raise_for_status()
    return Counter(response.json()["counts"])


def received(before: Counter, after: Counter, method: str, status: int, suffix: str = "") -> int:
    """Requests the face received between two snapshots, by method, status and path ending."""
    return sum(
        after[key] - before[key]
        for key in after
        if key.startswith(f"{method} ") and key.endswith(f" {status}")
        and key.rsplit(" ", 1)[0].endswith(suffix)
    )


async def all_records(crm: HubSpotCrm, object_type: str, *, archived: bool = False) -> list[CrmRecord]:
    records: list[CrmRecord] = []
    after = None
    while True:
        page = await crm.list_page(object_type, properties=["email", "domain", SYNC_KEY_PROPERTY],
                                   after=after, archived=archived)
        records += page.records
        if page.next_after is None:
            return records
        after = page.next_after


def holding(records: list[CrmRecord], sync_key: str) -> list[CrmRecord]:
    return [r for r in records if r.properties.get(SYNC_KEY_PROPERTY) == sync_key]


@pytest.fixture
def admin(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with sandbox_client(sandbox) as client:
        yield client


# ---- reads -------------------------------------------------------------------------------
async def test_list_pages_through_250_contacts(sandbox: Sandbox, admin: httpx.Client) -> None:
    prefix = tag()
    async with crm_for(sandbox) as crm:
        keys = [f"{prefix}-{i}" for i in range(250)]
        for start in range(0, 250, 100):
            chunk = keys[start:start + 100]
            upserted = await crm.batch_upsert(
                "contacts", [(k, {"email": f"{k}@paging.example", "firstname": f"P{k}"}) for k in chunk]
            )
            assert sorted(r.properties[SYNC_KEY_PROPERTY] for r in upserted) == sorted(chunk)

        pages = 0
        seen: list[CrmRecord] = []
        after = None
        while True:
            page = await crm.list_page("contacts", properties=[SYNC_KEY_PROPERTY, "firstname"], after=after, limit=100)
            pages += 1
            assert len(page.records) <= 100
            seen += page.records
            if page.next_after is None:
                break
            after = page.next_after
    ours = [r for r in seen if (r.properties.get(SYNC_KEY_PROPERTY) or "").startswith(prefix)]
    assert sorted(r.properties[SYNC_KEY_PROPERTY] for r in ours) == sorted(keys)
    assert len({r.id for r in seen}) == len(seen), "a record appeared on two pages"
    assert pages >= 3
    assert all(r.properties["firstname"] == f"P{r.properties[SYNC_KEY_PROPERTY]}" for r in ours)


async def test_search_modified_since_sees_the_index_and_its_lag(sandbox: Sandbox, admin: httpx.Client) -> None:
    prefix = tag()
    props = [SYNC_KEY_PROPERTY, "firstname"]

    def ours(records: list[CrmRecord]) -> dict[str, CrmRecord]:
        return {r.properties[SYNC_KEY_PROPERTY]: r for r in records
                if (r.properties.get(SYNC_KEY_PROPERTY) or "").startswith(prefix)}

    async def search_all(crm: HubSpotCrm, since) -> list[CrmRecord]:
        found, after = [], None
        while True:
            page = await crm.search_modified_since("contacts", since, properties=props, after=after, limit=2)
            assert not page.capped
            found += page.records
            if page.next_after is None:
                return found
            after = page.next_after

    try:
        async with crm_for(sandbox) as crm:
            first = [await crm.create("contacts", {"firstname": f"v1-{i}"}, sync_key=f"{prefix}-{i}") for i in range(5)]
            since = first[0].created_at
            found = await search_all(crm, since)
            assert sorted(ours(found)) == sorted(f"{prefix}-{i}" for i in range(5))
            # Oldest change first, so a caller can resume from the last one it saw.
            assert [r.updated_at for r in found] == sorted(r.updated_at for r in found)
            assert all(r.updated_at >= since for r in found)

            # Writes from now on reach the index far later than this test takes.
            admin.put("/hubspot/_sandbox/settings", json={"index_lag_s": 600}).raise_for_status()
            changed = await crm.update("contacts", first[0].id, {"firstname": "v2"})
            late = await crm.create("contacts", {"firstname": "late"}, sync_key=f"{prefix}-late")
            stale = ours(await search_all(crm, since))
            assert f"{prefix}-late" not in stale, "search saw a record created after the index"
            assert stale[f"{prefix}-0"].properties["firstname"] == "v1-0"
            assert ours(await search_all(crm, changed.updated_at)).keys() == set()
            # Reads of the record itself are consistent straight away.
            current = await crm.get("contacts", first[0].id, properties=props)
            assert current is not None and current.properties["firstname"] == "v2"

            admin.post("/hubspot/_sandbox/index/refresh").raise_for_status()
            fresh = ours(await search_all(crm, changed.updated_at))
            assert fresh.keys() == {f"{prefix}-0", f"{prefix}-late"}
            assert fresh[f"{prefix}-0"].properties["firstname"] == "v2"
            assert fresh[f"{prefix}-late"].id == late.id

            # With a short lag a change shows up on its own once the lag has passed.
            admin.put("/hubspot/_sandbox/settings", json={"index_lag_s": 0.5}).raise_for_status()
            second = await crm.update("contacts", first[1].id, {"firstname": "v2"})
            deadline = time.monotonic() + 20
            while True:
                seen = ours(await search_all(crm, second.updated_at))
                if f"{prefix}-1" in seen or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert seen[f"{prefix}-1"].properties["firstname"] == "v2"
    finally:
        admin.put("/hubspot/_sandbox/settings", json={"index_lag_s": None}).raise_for_status()
        admin.post("/hubspot/_sandbox/index/refresh").raise_for_status()


async def test_search_refuses_paging_past_the_result_cap(sandbox: Sandbox, admin: httpx.Client) -> None:
    response = admin.post("/hubspot/crm/v3/objects/contacts/search", json={"after": "10000", "limit": 10})
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


async def test_get_by_id_or_unique_property_update_and_clear(sandbox: Sandbox, admin: httpx.Client) -> None:
    key = tag()
    async with crm_for(sandbox) as crm:
        created = await crm.create("companies", {"name": "Acme", "domain": f"{key}.example", "city": "Lyon"}, sync_key=key)
        assert created.properties[SYNC_KEY_PROPERTY] == key
        by_key = await crm.get("companies", key, properties=["name", "city"], id_property=SYNC_KEY_PROPERTY)
        by_domain = await crm.get("companies", f"{key.upper()}.EXAMPLE", properties=["name"], id_property="domain")
        assert by_key is not None and by_domain is not None and by_key.id == by_domain.id == created.id
        updated = await crm.update("companies", created.id, {"city": None, "name": "Acme SA"})
        assert updated.updated_at >= created.updated_at
        again = await crm.get("companies", created.id, properties=["name", "city"])
        assert again is not None
        assert again.properties["name"] == "Acme SA" and again.properties["city"] is None
        assert await crm.get("companies", "999999999", properties=["name"]) is None
        with pytest.raises(ProviderRejected) as missing:
            await crm.update("companies", "999999999", {"name": "x"})
        assert missing.value.status_code == 404


async def test_archive_keeps_the_record_listable_as_archived(sandbox: Sandbox, admin: httpx.Client) -> None:
    key = tag()
    async with crm_for(sandbox) as crm:
        created = await crm.create("contacts", {"email": f"{key}@archive.example"}, sync_key=key)
        await crm.archive("contacts", created.id)
        await crm.archive("contacts", created.id)  # twice is fine
        await crm.archive("contacts", "999999999")  # never existed: nothing to archive
        assert await crm.get("contacts", created.id, properties=[]) is None
        assert await crm.get("contacts", key, properties=[], id_property=SYNC_KEY_PROPERTY) is None
        assert holding(await all_records(crm, "contacts"), key) == []
        [archived] = holding(await all_records(crm, "contacts", archived=True), key)
        assert archived.id == created.id and archived.archived and archived.archived_at is not None
        # The archived record gave up its unique values: the same key may be used again.
        recreated = await crm.create("contacts", {"email": f"{key}@archive.example"}, sync_key=key)
        assert recreated.id != created.id


# ---- exactly once --------------------------------------------------------------------------
async def test_create_is_applied_once_through_a_429_storm(sandbox: Sandbox, admin: httpx.Client) -> None:
    key = tag()
    storm = {"count": 5, "status_code": 429, "retry_after_s": 0.05, "methods": ["POST"],
             "path_contains": "/crm/v3/objects/contacts"}
    before = counts(admin)
    async with crm_for(sandbox) as crm:
        with faults(admin, storm):
            record = await crm.create("contacts", {"email": f"{key}@storm.example", "firstname": "Storm"}, sync_key=key)
        after = counts(admin)
        assert received(before, after, "POST", 429, "/contacts") == 5
        assert received(before, after, "POST", 201) == 1
        [only] = holding(await all_records(crm, "contacts"), key)
        assert only.id == record.id


async def test_create_is_applied_once_when_the_answer_is_lost(sandbox: Sandbox, admin: httpx.Client) -> None:
    key = tag()
    lost = {"count": 1, "status_code": 503, "after_commit": True, "methods": ["POST"],
            "path_contains": "/crm/v3/objects/contacts"}
    before = counts(admin)
    async with crm_for(sandbox) as crm:
        with faults(admin, lost):
            record = await crm.create("contacts", {"email": f"{key}@lost.example"}, sync_key=key)
        after = counts(admin)
        # Applied once (answered 503), refused as a duplicate on retry, then read back.
        assert received(before, after, "POST", 503) == 1
        assert received(before, after, "POST", 409) == 1
        assert received(before, after, "POST", 201) == 0
        assert received(before, after, "GET", 200, "{record_id}") == 1
        [only] = holding(await all_records(crm, "contacts"), key)
        assert only.id == record.id
        assert record.properties["email"] == f"{key}@lost.example"


async def test_concurrent_creates_with_one_key_make_one_record(sandbox: Sandbox, admin: httpx.Client) -> None:
    key = tag()
    async with crm_for(sandbox) as crm:
        results = await asyncio.gather(*(
            crm.create("contacts", {"email": f"{key}@race.example"}, sync_key=key) for _ in range(6)
        ))
        assert len({r.id for r in results}) == 1
        [only] = holding(await all_records(crm, "contacts"), key)
        assert only.id == results[0].id


async def test_batch_upsert_is_retry_safe(sandbox: Sandbox, admin: httpx.Client) -> None:
    prefix = tag()
    inputs = [(f"{prefix}-{i}", {"name": f"Co {i}", "domain": f"{prefix}-{i}.example"}) for i in range(3)]
    lost = {"count": 1, "status_code": 502, "after_commit": True, "methods": ["POST"], "path_contains": "/batch/upsert"}
    async with crm_for(sandbox) as crm:
        with faults(admin, lost):
            first = await crm.batch_upsert("companies", inputs)
        again = await crm.batch_upsert("companies", [(k, {**p, "name": p["name"] + "!"}) for k, p in inputs])
        assert {r.id for r in first} == {r.id for r in again}
        listed = await all_records(crm, "companies")
        for key, _ in inputs:
            assert len(holding(listed, key)) == 1
        with pytest.raises(ValueError):
            await crm.batch_upsert("companies", [(f"{prefix}-x{i}", {}) for i in range(101)])


# ---- failures --------------------------------------------------------------------------------
async def test_outage_beyond_the_retry_budget_fails_and_opens_the_breaker(sandbox: Sandbox, admin: httpx.Client) -> None:
    breaker = CircuitBreaker("hubspot", failure_threshold=3, reset_after_s=300)
    burst = {"count": 50, "status_code": 503, "methods": ["GET"], "path_contains": "/crm/v3/objects/companies"}
    retry = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.05)
    async with crm_for(sandbox, retry=retry, breaker=breaker) as crm:
        with faults(admin, burst):
            with pytest.raises(ProviderUnavailable) as first:
                await crm.get("companies", "1", properties=[])
            assert not isinstance(first.value, CircuitOpen)
            assert first.value.status_code == 503
            with pytest.raises(ProviderUnavailable):
                await crm.get("companies", "1", properties=[])
            assert breaker.state == "open"
            before = counts(admin)
            with pytest.raises(CircuitOpen):
                await crm.list_page("companies", properties=[])
            assert counts(admin) == before, "an open circuit still sent a request"


async def test_validation_error_is_rejected_without_retry(sandbox: Sandbox, admin: httpx.Client) -> None:
    key = tag()
    before = counts(admin)
    async with crm_for(sandbox) as crm:
        with pytest.raises(ProviderRejected) as invalid:
            await crm.create("contacts", {"email": "not-an-email"}, sync_key=key)
        with pytest.raises(ProviderRejected) as unknown:
            await crm.update("contacts", "1001", {"no_such_property": "x"})
    assert not isinstance(invalid.value, ProviderUnavailable)
    assert invalid.value.status_code == 400 and invalid.value.code == "VALIDATION_ERROR"
    assert "INVALID_EMAIL" in invalid.value.message
    assert unknown.value.status_code == 400 and "PROPERTY_DOESNT_EXIST" in unknown.value.message
    after = counts(admin)
    assert received(before, after, "POST", 400) == 1
    assert received(before, after, "PATCH", 400) == 1


async def test_conflict_on_someone_elses_email_is_rejected(sandbox: Sandbox, admin: httpx.Client) -> None:
    key = tag()
    async with crm_for(sandbox) as crm:
        await crm.create("contacts", {"email": f"{key}@taken.example"}, sync_key=f"{key}-a")
        with pytest.raises(ProviderRejected) as conflict:
            await crm.create("contacts", {"email": f"{key}@taken.example"}, sync_key=f"{key}-b")
    assert conflict.value.status_code == 409 and conflict.value.code == "CONFLICT"
    assert "Existing ID" in conflict.value.message


@dataclass
class RotatingToken:
    """A stored credential that a rotation replaced: refresh() loads the new token."""

    current: str
    newer: str
    refreshes: int = 0

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.current}"}

    async def refresh(self) -> bool:
        self.refreshes += 1
        if self.current == self.newer:
            return False
        self.current = self.newer
        return True


async def test_rotated_token_is_refreshed_once(sandbox: Sandbox, admin: httpx.Client) -> None:
    new_token = f"hubspot-rotated-{tag()}"
    key = tag()
    admin.put("/_sandbox/credentials/hubspot", json={"tokens": [new_token]}).raise_for_status()
    try:
        credential = RotatingToken(current=SANDBOX_TOKEN, newer=new_token)
        async with crm_for(sandbox, credentials=credential) as crm:
            record = await crm.create("contacts", {"firstname": "Rotated"}, sync_key=key)
            assert await crm.get("contacts", record.id, properties=[]) is not None
        assert credential.refreshes == 1
        async with crm_for(sandbox) as stale:
            with pytest.raises(ProviderAuthFailed) as refused:
                await stale.list_page("contacts", properties=[])
        assert refused.value.status_code == 401 and refused.value.code == "INVALID_AUTHENTICATION"
    finally:
        admin.put("/_sandbox/credentials/hubspot", json={"tokens": [SANDBOX_TOKEN]}).raise_for_status()


# ---- webhooks --------------------------------------------------------------------------------
@dataclass
class Delivery:
    uri: str
    headers: dict[str, str]
    body: bytes
    received_at: float


@dataclass
class Receiver:
    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    fail_first: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def webhook_receiver(path: str, *, fail_first: int = 0) -> Iterator[Receiver]:
    """A subscriber on 127.0.0.1 that answers 500 to its first ``fail_first`` deliveries."""
    receiver: Receiver

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                failing = receiver.fail_first > 0
                receiver.fail_first -= 1 if failing else 0
                if not failing:
                    receiver.deliveries.append(Delivery(
                        f"{receiver.url.rsplit(path, 1)[0]}{self.path}", dict(self.headers.items()), body, time.time()
                    ))
            self.send_response(500 if failing else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}{path}", fail_first=fail_first)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_changes_are_delivered_as_signed_webhooks(sandbox: Sandbox, admin: httpx.Client) -> None:
    secret = f"client-secret-{tag()}"
    app_id = "424242"
    key = tag()
    with webhook_receiver("/hooks/hubspot", fail_first=1) as receiver:
        log_start = max([a["seq"] for a in admin.get("/hubspot/_sandbox/webhooks/attempts").json()["attempts"]], default=0)
        admin.put("/hubspot/_sandbox/settings", json={"webhook_retry_base_s": 0.05}).raise_for_status()
        settings = admin.put(f"/hubspot/webhooks/v3/{app_id}/settings",
                             json={"targetUrl": receiver.url, "clientSecret": secret})
        assert settings.status_code == 200 and settings.json()["targetUrl"] == receiver.url
        try:
            async with crm_for(sandbox) as crm:
                record = await crm.create("contacts", {"email": f"{key}@hooks.example"}, sync_key=key)
                await crm.update("contacts", record.id, {"firstname": "Hooked"})
                await crm.archive("contacts", record.id)

            wanted = {"creation", "propertyChange", "deletion"}
            deadline = time.monotonic() + 20
            while True:
                with receiver.lock:
                    deliveries = list(receiver.deliveries)
                changes = [c for d in deliveries for c in parse_webhook_events(d.body) if c.object_id == record.id]
                if wanted <= {c.change for c in changes} or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
        finally:
            admin.delete(f"/hubspot/webhooks/v3/{app_id}/settings").raise_for_status()
            admin.put("/hubspot/_sandbox/settings", json={"webhook_retry_base_s": None}).raise_for_status()

    assert {c.change for c in changes} >= wanted
    for delivery in deliveries:
        headers = {k.lower(): v for k, v in delivery.headers.items()}
        signed = dict(secret=secret, method="POST", uri=delivery.uri, body=delivery.body,
                      timestamp=headers["x-hubspot-request-timestamp"],
                      signature=headers["x-hubspot-signature-v3"])
        assert verify_webhook_signature(**signed, now_s=delivery.received_at)
        assert not verify_webhook_signature(**{**signed, "body": delivery.body + b" "}, now_s=delivery.received_at)
        assert not verify_webhook_signature(**{**signed, "secret": "wrong"}, now_s=delivery.received_at)
    change = next(c for c in changes if c.change == "propertyChange" and c.property_name == "firstname")
    assert change.object_type == "contacts" and change.property_value == "Hooked"
    assert abs(change.occurred_at - record.created_at) < timedelta(minutes=5)
    assert len({c.event_id for c in changes}) == len(changes)

    attempts = admin.get("/hubspot/_sandbox/webhooks/attempts", params={"after_seq": log_start}).json()["attempts"]
    failed = [a for a in attempts if a["status_code"] == 500]
    assert len(failed) == 1, attempts
    # The batch that failed was delivered again, with the next attempt number.
    retried = [a for a in attempts if a["batch_id"] == failed[0]["batch_id"] and a["status_code"] == 204]
    assert len(retried) == 1 and retried[0]["attempt"] == failed[0]["attempt"] + 1
    assert any(c.attempt == 1 for d in deliveries for c in parse_webhook_events(d.body))
