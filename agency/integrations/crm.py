"""HubSpot CRM v3 adapter: contacts and companies, change search, exactly-once creates, webhooks.

Exactly once: every record we create carries ``agency_sync_key``, a custom property with unique
values (the portal must define it with ``hasUniqueValue: true``). A create is then safe to
retry: if an earlier attempt was applied but its answer lost, HubSpot refuses the retry with 409
and the adapter returns the record that holds the key. Batch upserts by that key are idempotent
for the same reason.

Change search is eventually consistent and capped: HubSpot's search index trails writes (a
just-changed record may be missing or stale for a while) and one query pages through at most
10,000 results. :meth:`HubSpotCrm.search_modified_since` sorts by modification time ascending,
so a caller resumes a capped query from the last record's ``updated_at`` (see
:attr:`CrmPage.capped`) and covers the index lag by starting a little before its watermark.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import quote

import httpx

from agency.integrations.errors import ProviderRejected, ProviderUnavailable
from agency.integrations.http import CredentialSource, ProviderAdapter, ProviderHttp, json_object
from agency.integrations.reliability import CircuitBreaker, RetryPolicy

PROVIDER = "hubspot"
ObjectType = Literal["contacts", "companies"]

SYNC_KEY_PROPERTY = "agency_sync_key"
# Contacts keep their modification time in ``lastmodifieddate``; other objects in
# ``hs_lastmodifieddate`` (HubSpot's search documentation).
MODIFIED_PROPERTY: dict[str, str] = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate"}
LIST_MAX_LIMIT = 100
SEARCH_MAX_LIMIT = 200
SEARCH_RESULT_CAP = 10_000
BATCH_MAX_INPUTS = 100


@dataclass(frozen=True)
class CrmRecord:
    object_type: str
    id: str
    properties: dict[str, str | None]
    created_at: datetime
    updated_at: datetime
    archived: bool = False
    archived_at: datetime | None = None


@dataclass(frozen=True)
class CrmPage:
    records: list[CrmRecord]
    next_after: str | None
    # Search only: how many records matched, and whether paging stopped at HubSpot's 10,000
    # result cap with more to come (resume with a new query from the last record's updated_at).
    total: int | None = None
    capped: bool = False


@dataclass(frozen=True)
class CrmChange:
    """One webhook event: what changed on which record, and when."""

    object_type: str  # "contacts", "companies", ... (HubSpot's plural object names)
    object_id: str
    change: str  # "creation", "propertyChange", "deletion", "merge", "restore", "associationChange", ...
    occurred_at: datetime
    event_id: str
    property_name: str | None = None
    property_value: str | None = None
    # Merges: the record that survived and the records merged into it.
    primary_object_id: str | None = None
    merged_object_ids: tuple[str, ...] = ()
    attempt: int = 0
    portal_id: int | None = None


def hubspot_error_reader(response: httpx.Response) -> tuple[str, str]:
    """(code, message) from HubSpot's ``{"status": "error", "message", "category", ...}``."""
    try:
        body = response.json()
    except ValueError:
        return (f"http_{response.status_code}", response.text[:300])
    if not isinstance(body, dict):
        return (f"http_{response.status_code}", str(body)[:300])
    code = body.get("subCategory") or body.get("category") or f"http_{response.status_code}"
    return (str(code), str(body.get("message", ""))[:500])


def parse_time(value: Any) -> datetime:
    """A HubSpot timestamp (ISO 8601 with ``Z``, or epoch milliseconds) as an aware UTC datetime."""
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("pass an aware datetime (UTC): a naive one is ambiguous")
    return int(moment.timestamp() * 1000)


def _record(object_type: str, body: Any) -> CrmRecord:
    try:
        archived_at = body.get("archivedAt")
        return CrmRecord(
            object_type=object_type,
            id=str(body["id"]),
            properties={str(k): (None if v is None else str(v)) for k, v in (body.get("properties") or {}).items()},
            created_at=parse_time(body["createdAt"]),
            updated_at=parse_time(body["updatedAt"]),
            archived=bool(body.get("archived", False)),
            archived_at=parse_time(archived_at) if archived_at else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # A 2xx whose body is not a record (a proxy page, a changed API): transient, not ours.
        raise ProviderUnavailable(PROVIDER, f"unexpected record shape: {exc!r}") from exc


def _results(object_type: str, body: dict[str, Any]) -> list[CrmRecord]:
    results = body.get("results")
    if not isinstance(results, list):
        raise ProviderUnavailable(PROVIDER, "unexpected reply: no results list")
    return [_record(object_type, item) for item in results]


def _next_after(body: dict[str, Any]) -> str | None:
    after = ((body.get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after not in (None, "") else None


def _write_values(properties: dict[str, str | None], *, clear_missing: bool) -> dict[str, str]:
    """HubSpot clears a property set to "": None means clear on updates, skip on creates."""
    if clear_missing:
        return {k: "" if v is None else v for k, v in properties.items()}
    return {k: v for k, v in properties.items() if v is not None}


class HubSpotCrm(ProviderAdapter):
    """One HubSpot portal for one credential; reuse it (it pools connections)."""

    def __init__(
        self,
        base_url: str,
        credentials: CredentialSource,
        *,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._http = ProviderHttp(
            PROVIDER,
            base_url,
            credentials=credentials,
            timeout_s=timeout_s,
            retry=retry,
            breaker=breaker,
            error_reader=hubspot_error_reader,
            headers={"Accept": "application/json"},
        )

    # ---- reads -------------------------------------------------------------------------
    async def list_page(
        self,
        object_type: ObjectType,
        *,
        properties: list[str],
        after: str | None = None,
        limit: int = 100,
        archived: bool = False,
    ) -> CrmPage:
        """One page of every record (``archived=True``: only archived ones), in id order."""
        params: dict[str, Any] = {
            "limit": max(1, min(limit, LIST_MAX_LIMIT)),
            "archived": "true" if archived else "false",
        }
        if properties:
            params["properties"] = ",".join(properties)
        if after:
            params["after"] = after
        response = await self._http.request("GET", f"/crm/v3/objects/{object_type}", params=params)
        body = json_object(PROVIDER, response)
        return CrmPage(_results(object_type, body), _next_after(body))

    async def search_modified_since(
        self,
        object_type: ObjectType,
        since: datetime,
        *,
        properties: list[str],
        after: str | None = None,
        limit: int = 100,
    ) -> CrmPage:
        """Records modified at or after ``since``, oldest change first (as far as the index knows).

        At HubSpot's 10,000 result cap the page has ``next_after=None`` and ``capped=True``:
        search again with ``since`` = the last record's ``updated_at``.
        """
        modified = MODIFIED_PROPERTY[object_type]
        limit = max(1, min(limit, SEARCH_MAX_LIMIT))
        payload: dict[str, Any] = {
            "filterGroups": [{"filters": [{"propertyName": modified, "operator": "GTE", "value": str(epoch_ms(since))}]}],
            "sorts": [{"propertyName": modified, "direction": "ASCENDING"}],
            "properties": list(properties),
            "limit": limit,
        }
        if after:
            payload["after"] = after
        # A search changes nothing: retrying it is safe.
        response = await self._http.request(
            "POST", f"/crm/v3/objects/{object_type}/search", retry_safe=True, json=payload
        )
        body = json_object(PROVIDER, response)
        next_after = _next_after(body)
        capped = next_after is not None and next_after.isdigit() and int(next_after) >= SEARCH_RESULT_CAP
        total = body.get("total")
        return CrmPage(
            _results(object_type, body),
            None if capped else next_after,
            total=int(total) if isinstance(total, int) else None,
            capped=capped,
        )

    async def get(
        self,
        object_type: ObjectType,
        record_id: str,
        *,
        properties: list[str],
        id_property: str | None = None,
    ) -> CrmRecord | None:
        """One live record by id (or by a unique property's value); None when there is none."""
        params: dict[str, Any] = {}
        if properties:
            params["properties"] = ",".join(properties)
        if id_property:
            params["idProperty"] = id_property
        try:
            response = await self._http.request(
                "GET", f"/crm/v3/objects/{object_type}/{quote(record_id, safe='')}", params=params
            )
        except ProviderRejected as exc:
            if exc.status_code == 404:
                return None
            raise
        return _record(object_type, json_object(PROVIDER, response))

    # ---- writes ------------------------------------------------------------------------
    async def create(
        self, object_type: ObjectType, properties: dict[str, str | None], *, sync_key: str
    ) -> CrmRecord:
        """Create a record holding ``sync_key``, exactly once however often it is retried."""
        if not sync_key:
            raise ValueError("sync_key must not be empty")
        values = {**_write_values(properties, clear_missing=False), SYNC_KEY_PROPERTY: sync_key}
        try:
            # Retry-safe: a second create with the same unique key is refused with 409, never applied.
            response = await self._http.request(
                "POST", f"/crm/v3/objects/{object_type}", retry_safe=True, json={"properties": values}
            )
        except ProviderRejected as exc:
            if exc.status_code != 409:
                raise
            existing = await self.get(
                object_type, sync_key, properties=sorted(values), id_property=SYNC_KEY_PROPERTY
            )
            if existing is None:
                # The conflict is on another unique value (a contact's email held by a record we
                # did not create): the caller has to decide whether to link that record.
                raise
            return existing
        return _record(object_type, json_object(PROVIDER, response))

    async def update(
        self, object_type: ObjectType, record_id: str, properties: dict[str, str | None]
    ) -> CrmRecord:
        """Set properties (None clears one); 404 raises :class:`ProviderRejected`."""
        # Setting absolute values is idempotent, so a retry cannot do harm.
        response = await self._http.request(
            "PATCH",
            f"/crm/v3/objects/{object_type}/{quote(record_id, safe='')}",
            retry_safe=True,
            json={"properties": _write_values(properties, clear_missing=True)},
        )
        return _record(object_type, json_object(PROVIDER, response))

    async def archive(self, object_type: ObjectType, record_id: str) -> None:
        """Archive (HubSpot's delete); a record that is gone already counts as archived."""
        try:
            await self._http.request("DELETE", f"/crm/v3/objects/{object_type}/{quote(record_id, safe='')}")
        except ProviderRejected as exc:
            if exc.status_code != 404:
                raise

    async def batch_upsert(
        self, object_type: ObjectType, inputs: list[tuple[str, dict[str, str | None]]]
    ) -> list[CrmRecord]:
        """Create or update up to 100 records by ``agency_sync_key``; records in HubSpot's order."""
        if not inputs:
            return []
        if len(inputs) > BATCH_MAX_INPUTS:
            raise ValueError(f"at most {BATCH_MAX_INPUTS} inputs per batch, got {len(inputs)}")
        payload = {
            "inputs": [
                {
                    "idProperty": SYNC_KEY_PROPERTY,
                    "id": sync_key,
                    "properties": {**_write_values(properties, clear_missing=True), SYNC_KEY_PROPERTY: sync_key},
                }
                for sync_key, properties in inputs
            ]
        }
        response = await self._http.request(
            "POST", f"/crm/v3/objects/{object_type}/batch/upsert", retry_safe=True, json=payload
        )
        body = json_object(PROVIDER, response)
        errors = body.get("errors")
        if response.status_code == 207 or errors:
            # Partly applied: the caller retries the whole batch (upserts are idempotent) or
            # fixes the inputs the errors name.
            first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
            raise ProviderRejected(
                PROVIDER, response.status_code, str(first.get("category") or "BATCH_PARTIAL_FAILURE"),
                str(first.get("message") or f"{body.get('numErrors', '?')} inputs failed"), body,
            )
        return _results(object_type, body)


# ---- webhooks --------------------------------------------------------------------------
# HubSpot signs the URI with these escapes decoded (its v3 signature documentation).
_URI_DECODES = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'",
                "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}


def _signed_uri(uri: str) -> str:
    for escaped, plain in _URI_DECODES.items():
        uri = uri.replace(escaped, plain).replace(escaped.lower(), plain)
    return uri


def webhook_signature(secret: str, *, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 signature: base64(HMAC-SHA256(secret, method + uri + body + timestamp))."""
    message = method.upper().encode() + _signed_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def verify_webhook_signature(
    secret: str,
    *,
    method: str,
    uri: str,
    body: bytes,
    timestamp: str,
    signature: str,
    now_s: float,
    max_age_s: float = 300,
) -> bool:
    """True for a genuine, fresh delivery (``X-HubSpot-Signature-v3``, ``X-HubSpot-Request-Timestamp``
    in milliseconds; ``uri`` is the full URL HubSpot called). Stale timestamps are refused so a
    captured request cannot be replayed later; so are ones from the future beyond the same margin."""
    if not secret or not signature:
        return False
    try:
        sent_ms = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now_s * 1000 - sent_ms) > max_age_s * 1000:
        return False
    expected = webhook_signature(secret, method=method, uri=uri, body=body, timestamp=timestamp)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


_OBJECT_NAMES = {"contact": "contacts", "company": "companies", "deal": "deals", "ticket": "tickets",
                 "product": "products", "line_item": "line_items", "conversation": "conversations"}
_OBJECT_TYPE_IDS = {"0-1": "contacts", "0-2": "companies", "0-3": "deals", "0-5": "tickets", "0-7": "products",
                    "0-8": "line_items"}


def parse_webhook_events(body: bytes) -> list[CrmChange]:
    """The events of one webhook delivery (a JSON array); ValueError when it is not one."""
    try:
        events = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"webhook body is not JSON: {exc}") from exc
    if not isinstance(events, list):
        raise ValueError("webhook body must be a JSON array of events")
    return [_change(event) for event in events]


def _change(event: Any) -> CrmChange:
    if not isinstance(event, dict):
        raise ValueError("each webhook event must be an object")
    subscription = event.get("subscriptionType")
    if not isinstance(subscription, str) or "." not in subscription:
        raise ValueError(f"webhook event without a subscriptionType: {str(event)[:200]}")
    subject, change = subscription.split(".", 1)
    if subject == "object":
        # Generic subscriptions ("object.propertyChange") name the type by its id.
        object_type = _OBJECT_TYPE_IDS.get(str(event.get("objectTypeId")), str(event.get("objectTypeId")))
    else:
        object_type = _OBJECT_NAMES.get(subject, subject)
    object_id = event.get("objectId", event.get("primaryObjectId", event.get("fromObjectId")))
    if object_id is None or "eventId" not in event or "occurredAt" not in event:
        raise ValueError(f"webhook event lacks objectId, eventId or occurredAt: {str(event)[:200]}")
    value = event.get("propertyValue")
    primary = event.get("primaryObjectId")
    portal = event.get("portalId")
    return CrmChange(
        object_type=object_type,
        object_id=str(object_id),
        change=change,
        occurred_at=parse_time(event["occurredAt"]),
        event_id=str(event["eventId"]),
        property_name=event.get("propertyName"),
        property_value=None if value is None else str(value),
        primary_object_id=None if primary is None else str(primary),
        merged_object_ids=tuple(str(i) for i in event.get("mergedObjectIds") or ()),
        attempt=int(event.get("attemptNumber") or 0),
        portal_id=int(portal) if isinstance(portal, int) else None,
    )
