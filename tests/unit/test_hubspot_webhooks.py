"""HubSpot webhook v3 signatures and event parsing (agency.integrations.crm)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timezone

import pytest

from agency.integrations.crm import parse_webhook_events, verify_webhook_signature, webhook_signature
from agency.sandbox.providers.hubspot import sign_v3

SECRET = "app-client-secret"
URI = "https://hooks.example.com/hubspot/events?tenant=7"
BODY = b'[{"eventId":1,"objectId":1001,"subscriptionType":"contact.creation","occurredAt":1700000000000}]'
NOW_S = 1_700_000_100.0
TIMESTAMP = str(int(NOW_S * 1000) - 2_000)  # sent two seconds ago


def reference_signature(secret: str, message: bytes) -> str:
    # The documented construction, written out independently of the code under test.
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


SIGNATURE = reference_signature(SECRET, b"POST" + URI.encode() + BODY + TIMESTAMP.encode())


def verify(**changes) -> bool:
    values = dict(method="POST", uri=URI, body=BODY, timestamp=TIMESTAMP, signature=SIGNATURE, now_s=NOW_S)
    values.update(changes)
    secret = values.pop("secret", SECRET)
    return verify_webhook_signature(secret, **values)


def test_valid_signature_is_accepted() -> None:
    assert verify()
    assert webhook_signature(SECRET, method="post", uri=URI, body=BODY, timestamp=TIMESTAMP) == SIGNATURE


def test_the_sandbox_signs_as_the_adapter_verifies() -> None:
    assert sign_v3(SECRET, "POST", URI, BODY, TIMESTAMP) == SIGNATURE


@pytest.mark.parametrize(
    "changes",
    [
        {"body": BODY.replace(b"1001", b"1002")},
        {"body": BODY + b"\n"},
        {"uri": URI.replace("tenant=7", "tenant=8")},
        {"method": "PUT"},
        {"secret": "another-secret"},
        {"signature": SIGNATURE[:-4] + "AAA="},
        {"signature": ""},
    ],
    ids=["tampered-body", "appended-body", "other-uri", "other-method", "wrong-secret", "wrong-signature", "empty"],
)
def test_tampered_deliveries_are_refused(changes: dict) -> None:
    assert not verify(**changes)


def test_a_changed_timestamp_breaks_the_signature() -> None:
    assert not verify(timestamp=str(int(TIMESTAMP) + 1))


def test_stale_and_future_timestamps_are_refused() -> None:
    sent_s = int(TIMESTAMP) / 1000
    # Correctly signed, but replayed after the five minutes HubSpot allows.
    assert verify(now_s=sent_s + 299)
    assert not verify(now_s=sent_s + 301)
    assert not verify(now_s=sent_s + 60, max_age_s=30)
    assert not verify(now_s=sent_s - 301)
    assert not verify(timestamp="not-a-number")


def test_uri_escapes_are_decoded_before_signing() -> None:
    plain = "https://hooks.example.com/hubspot/events?email=a@b.c"
    escaped = "https://hooks.example.com/hubspot/events?email=a%40b.c"
    signature = reference_signature(SECRET, b"POST" + plain.encode() + BODY + TIMESTAMP.encode())
    assert verify(uri=escaped, signature=signature)


def test_events_are_parsed() -> None:
    body = json.dumps([
        {"eventId": 100, "subscriptionId": 2, "portalId": 62515, "appId": 1, "occurredAt": 1700000000123,
         "subscriptionType": "contact.propertyChange", "attemptNumber": 1, "objectId": 1001,
         "propertyName": "firstname", "propertyValue": "Ada", "changeSource": "CRM"},
        {"eventId": 101, "portalId": 62515, "occurredAt": 1700000000200, "subscriptionType": "company.creation",
         "objectId": 2002, "changeFlag": "CREATED"},
        {"eventId": 102, "occurredAt": 1700000000300, "subscriptionType": "contact.merge", "objectId": 1001,
         "primaryObjectId": 1001, "mergedObjectIds": [1003, 1004], "newObjectId": 1001},
        {"eventId": 103, "occurredAt": 1700000000400, "subscriptionType": "object.propertyChange",
         "objectTypeId": "0-2", "objectId": 2002, "propertyName": "domain", "propertyValue": "acme.example"},
        {"eventId": 104, "occurredAt": 1700000000500, "subscriptionType": "contact.deletion", "objectId": 1005},
    ]).encode()
    changed, created, merged, generic, deleted = parse_webhook_events(body)
    assert (changed.object_type, changed.object_id, changed.change) == ("contacts", "1001", "propertyChange")
    assert (changed.property_name, changed.property_value, changed.attempt) == ("firstname", "Ada", 1)
    assert changed.occurred_at == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=timezone.utc)
    assert changed.event_id == "100" and changed.portal_id == 62515
    assert (created.object_type, created.change, created.property_name) == ("companies", "creation", None)
    assert merged.change == "merge" and merged.primary_object_id == "1001"
    assert merged.merged_object_ids == ("1003", "1004")
    assert (generic.object_type, generic.property_value) == ("companies", "acme.example")
    assert (deleted.object_type, deleted.object_id, deleted.change) == ("contacts", "1005", "deletion")


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"eventId": 1}', b'[{"eventId": 1, "occurredAt": 1}]',
     b'[{"subscriptionType": "contact.creation", "objectId": 1}]', b"[1]"],
    ids=["not-json", "not-a-list", "no-type", "no-event-id", "not-an-object"],
)
def test_malformed_deliveries_are_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_webhook_events(body)
