"""Sandbox face: HubSpot CRM v3 (contacts, companies, search, archive, webhooks v3 signatures).

Served under ``/hubspot`` with HubSpot's request and response shapes:

* ``GET /crm/v3/objects/{type}?limit&after&properties=a,b&archived=`` -> ``{"results", "paging":
  {"next": {"after", "link"}}}`` (id cursor; ``archived=true`` lists only archived records);
* ``POST /crm/v3/objects/{type}`` ``{"properties"}`` -> 201 record; 409 ``CONFLICT`` when a unique
  value (contacts' ``email``, companies' ``domain``, ``agency_sync_key``) is held by another record;
* ``GET|PATCH|DELETE /crm/v3/objects/{type}/{id}`` (``idProperty=`` looks up by a unique
  property; DELETE archives, 204);
* ``POST /crm/v3/objects/{type}/search`` (filterGroups, sorts, query, after, limit; at most
  10,000 results per query; sees the index, where a write shows up ``index_lag_s`` later);
* ``POST /crm/v3/objects/{type}/batch/upsert`` (``idProperty`` must be a unique property);
* ``PUT|GET|DELETE /webhooks/v3/{appId}/settings``: ``targetUrl`` plus the sandbox-only
  ``clientSecret`` (on HubSpot it is the app's secret); every change made through this API is
  then POSTed to the target as a batch of v3 events, signed with ``X-HubSpot-Signature-v3``.

Records carry ``hs_object_id``, ``createdate``, ``lastmodifieddate`` and ``hs_lastmodifieddate``
(read-only, maintained here). Unknown properties are refused as HubSpot refuses them; the
portal knows HubSpot's common properties plus our app's custom ``agency_*`` properties.

Sandbox-only controls (sandbox bearer token): ``GET|PUT /_sandbox/settings`` (``index_lag_s``,
``webhook_max_attempts``, ``webhook_retry_base_s``; the lag applies to writes made after it is
set), ``POST /_sandbox/index/refresh`` (the index catches up with every write so far) and
``GET /_sandbox/webhooks/attempts`` (every delivery attempt: batch, attempt number, target, status
or error, event ids).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import math
import queue
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from agency.sandbox.providers import ProviderFace, SandboxContext
from agency.sandbox.providers.common import bearer_token, token_accepted
from agency.sandbox.providers.hubspot_store import Change, HubSpotStore, Record, WriteResult

log = logging.getLogger(__name__)

SYNC_KEY_PROPERTY = "agency_sync_key"
# Singular names as webhook subscription types spell them.
OBJECT_TYPES = {"contacts": "contact", "companies": "company"}
UNIQUE_PROPERTIES = {
    "contacts": ("email", SYNC_KEY_PROPERTY),
    "companies": ("domain", SYNC_KEY_PROPERTY),
}
READ_ONLY_PROPERTIES = frozenset({"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate"})
DATE_PROPERTIES = frozenset({"createdate", "lastmodifieddate", "hs_lastmodifieddate"})
_COMMON = {"phone", "city", "state", "zip", "country", "address", "website", "lifecyclestage",
           "hubspot_owner_id", "description", "industry", "twitterhandle", "linkedin_company_page"}
KNOWN_PROPERTIES = {
    "contacts": frozenset(_COMMON | {
        "email", "firstname", "lastname", "mobilephone", "company", "jobtitle", "hs_lead_status",
        "salutation", "fax", "numemployees", "annualrevenue", "hs_analytics_source",
        "hs_analytics_source_data_1", "hs_analytics_source_data_2", "hs_language", "message",
        "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
    }),
    "companies": frozenset(_COMMON | {
        "name", "domain", "numberofemployees", "annualrevenue", "type", "founded_year",
        "timezone", "hs_lead_status", "linkedinbio", "is_public", "total_money_raised",
    }),
}
DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
}
_CUSTOM_PROPERTY = re.compile(r"^agency_[a-z0-9_]{1,90}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
LIST_MAX_LIMIT = 100
SEARCH_MAX_LIMIT = 200
SEARCH_MAX_RESULTS = 10_000
BATCH_MAX_INPUTS = 100
PORTAL_ID = 62515


def error_response(status_code: int, message: str, retry_after_s: float | None = None) -> JSONResponse:
    """An error in this provider's documented shape."""
    category = ("RATE_LIMITS" if status_code == 429 else "INTERNAL_ERROR" if status_code >= 500
                else "VALIDATION_ERROR")
    return hubspot_error(status_code, category, message)


def hubspot_error(status_code: int, category: str, message: str, *, context: dict[str, list[str]] | None = None,
                  errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                            "category": category}
    if context:
        body["context"] = context
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code, headers=headers)


class Refused(Exception):
    """A request refused in HubSpot's error shape (raised in helpers, answered by the route)."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__("refused")
        self.response = response


def _invalid(message: str, **kwargs: Any) -> Refused:
    return Refused(hubspot_error(400, "VALIDATION_ERROR", message, **kwargs))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def epoch_ms(value: Any) -> int | None:
    """A HubSpot date filter value (epoch milliseconds or ISO 8601) in milliseconds."""
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp() * 1000)


def all_properties(record: Record) -> dict[str, str]:
    return {
        **record.properties,
        "hs_object_id": str(record.id),
        "createdate": iso(record.created_at),
        "lastmodifieddate": iso(record.updated_at),
        "hs_lastmodifieddate": iso(record.updated_at),
    }


def record_json(record: Record, requested: list[str] | None) -> dict[str, Any]:
    values = all_properties(record)
    names = list(requested) if requested else list(DEFAULT_PROPERTIES[record.object_type])
    names += [p for p in ("hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate") if p not in names]
    body: dict[str, Any] = {
        "id": str(record.id),
        "properties": {name: values.get(name) for name in names},
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
        "archived": record.archived,
    }
    if record.archived and record.archived_at is not None:
        body["archivedAt"] = iso(record.archived_at)
    return body


def property_list(raw: str | list[str] | None) -> list[str]:
    items = raw if isinstance(raw, list) else [raw or ""]
    return [name.strip() for item in items for name in str(item).split(",") if name.strip()]


def validate_properties(object_type: str, payload: Any) -> dict[str, str]:
    """The ``properties`` of a write as strings ("" clears); unknown, read-only or malformed
    values are refused all together, as HubSpot lists every invalid property."""
    if not isinstance(payload, dict):
        raise _invalid("Invalid input JSON: properties must be an object")
    values: dict[str, str] = {}
    problems: list[dict[str, Any]] = []

    def problem(name: str, code: str, message: str) -> None:
        problems.append({"isValid": False, "message": message, "error": code, "name": name})

    for name, raw in payload.items():
        if name in READ_ONLY_PROPERTIES:
            problem(name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.')
            continue
        if name not in KNOWN_PROPERTIES[object_type] and not _CUSTOM_PROPERTY.match(str(name)):
            problem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
            continue
        if raw is None:
            value = ""
        elif isinstance(raw, bool):
            value = "true" if raw else "false"
        elif isinstance(raw, (str, int, float)):
            value = str(raw)
        else:
            problem(name, "INVALID_PROPERTY_VALUE", f"{name} must be a string, number or boolean")
            continue
        if name == "email" and value:
            value = value.strip().lower()
            if not _EMAIL.match(value):
                problem(name, "INVALID_EMAIL", f"Email address {value} is invalid")
                continue
        if name == "domain" and value:
            value = value.strip().lower()
        values[name] = value
    if problems:
        raise Refused(hubspot_error(
            400, "VALIDATION_ERROR", f"Property values were not valid: {json.dumps(problems)}",
            errors=[{"message": p["message"], "code": p["error"], "context": {"propertyName": [p["name"]]}}
                    for p in problems],
        ))
    return values


def conflict_response(object_type: str, result: WriteResult) -> JSONResponse:
    conflict = result.conflict
    assert conflict is not None
    noun = OBJECT_TYPES[object_type].capitalize()
    return hubspot_error(
        409, "CONFLICT",
        f"{noun} already exists. Existing ID: {conflict.existing_id}"
        if conflict.property in ("email", "domain")
        else f"A {OBJECT_TYPES[object_type]} with the value {conflict.value!r} for the unique property "
             f"{conflict.property} already exists. Existing ID: {conflict.existing_id}",
        context={"existingId": [str(conflict.existing_id)], "propertyName": [conflict.property]},
    )


def not_found() -> JSONResponse:
    return hubspot_error(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.")


# ---- search --------------------------------------------------------------------------------
_OPERATORS = {"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
              "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}


def _comparable(name: str, value: Any) -> Any:
    if name in DATE_PROPERTIES:
        return epoch_ms(value)
    text = str(value).strip()
    try:
        number = float(text)
        if math.isfinite(number):
            return number
    except ValueError:
        pass
    return text.lower()


def _matches(values: dict[str, str], flt: dict[str, Any]) -> bool:
    name, op = flt["propertyName"], flt["operator"]
    present = values.get(name) not in (None, "")
    if op == "HAS_PROPERTY":
        return present
    if op == "NOT_HAS_PROPERTY":
        return not present
    if not present:
        return op in ("NEQ", "NOT_IN", "NOT_CONTAINS_TOKEN")
    actual = _comparable(name, values[name])
    if op in ("IN", "NOT_IN"):
        inside = any(actual == _comparable(name, v) for v in flt.get("values") or [])
        return inside if op == "IN" else not inside
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(flt.get("value", "")).lower().strip("*")
        found = token in str(values[name]).lower()
        return found if op == "CONTAINS_TOKEN" else not found
    wanted = _comparable(name, flt.get("value"))
    try:
        if op == "EQ":
            return actual == wanted
        if op == "NEQ":
            return actual != wanted
        if op == "BETWEEN":
            return wanted <= actual <= _comparable(name, flt.get("highValue"))
        return {"LT": actual < wanted, "LTE": actual <= wanted, "GT": actual > wanted, "GTE": actual >= wanted}[op]
    except TypeError:  # a number compared with text: no match, as an index would find none
        return False


def _search_request(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise _invalid("Invalid input JSON: the search request must be an object")
    groups = payload.get("filterGroups") or []
    if not isinstance(groups, list) or len(groups) > 5:
        raise _invalid("filterGroups must be a list of at most 5 groups")
    total_filters = 0
    for group in groups:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list) or len(filters) > 6:
            raise _invalid("each filter group needs a list of at most 6 filters")
        total_filters += len(filters)
        for flt in filters:
            if not isinstance(flt, dict) or not isinstance(flt.get("propertyName"), str) or flt.get("operator") not in _OPERATORS:
                raise _invalid(f"invalid filter: {json.dumps(flt)[:200]}")
            if flt["propertyName"] in DATE_PROPERTIES and "value" in flt and epoch_ms(flt["value"]) is None:
                raise _invalid(f"{flt['value']!r} is not a valid date for {flt['propertyName']}")
    if total_filters > 18:
        raise _invalid("at most 18 filters per search")
    sorts = payload.get("sorts") or []
    if not isinstance(sorts, list) or len(sorts) > 1:
        raise _invalid("at most one sort is supported")
    try:
        after = int(payload.get("after") or 0)
        limit = int(payload.get("limit") or 10)
    except (TypeError, ValueError):
        raise _invalid("after and limit must be integers") from None
    if after < 0 or limit < 1:
        raise _invalid("after must be >= 0 and limit >= 1")
    if limit > SEARCH_MAX_LIMIT:
        raise _invalid(f"limit must be at most {SEARCH_MAX_LIMIT}")
    if after >= SEARCH_MAX_RESULTS:
        raise _invalid(f"paging beyond {SEARCH_MAX_RESULTS} results is not supported; narrow the query")
    return {"groups": groups, "sorts": sorts, "after": after, "limit": limit,
            "query": str(payload.get("query") or "").strip().lower(),
            "properties": property_list(payload.get("properties"))}


def run_search(records: list[Record], request: dict[str, Any]) -> dict[str, Any]:
    matching = []
    for record in records:
        values = all_properties(record)
        if request["groups"] and not any(all(_matches(values, f) for f in g["filters"]) for g in request["groups"]):
            continue
        if request["query"] and not any(
            request["query"] in (values.get(p) or "").lower()
            for p in ("email", "firstname", "lastname", "phone", "name", "domain", "website")
        ):
            continue
        matching.append((record, values))
    if request["sorts"]:
        sort = request["sorts"][0]
        name = sort.get("propertyName", "hs_object_id") if isinstance(sort, dict) else str(sort).lstrip("-")
        descending = (sort.get("direction") == "DESCENDING") if isinstance(sort, dict) else str(sort).startswith("-")

        def key(item: tuple[Record, dict[str, str]]) -> tuple:
            raw = item[1].get(name)
            value = _comparable(name, raw) if raw not in (None, "") else None
            # Missing values sort last; ties break on id so paging is stable.
            return (value is None, (0, value) if isinstance(value, (int, float)) else (1, str(value or "")), item[0].id)

        matching.sort(key=key, reverse=descending)
    total = len(matching)
    start, limit = request["after"], request["limit"]
    page = matching[start:start + limit]
    body: dict[str, Any] = {"total": total, "results": [record_json(r, request["properties"]) for r, _ in page]}
    if start + limit < total:
        body["paging"] = {"next": {"after": str(start + limit)}}
    return body


# ---- webhooks ------------------------------------------------------------------------------
# HubSpot signs the target URI with these escapes decoded.
_DECODED_IN_SIGNATURE = ("%3A:", "%2F/", "%3F?", "%40@", "%21!", "%24$", "%27'", "%28(", "%29)", "%2A*",
                         "%2C,", "%3B;")


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 signature: base64 HMAC-SHA256 over method + URI + body + timestamp."""
    for pair in _DECODED_IN_SIGNATURE:
        uri = uri.replace(pair[:3], pair[3]).replace(pair[:3].lower(), pair[3])
    message = method.encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


_SUBSCRIPTION_IDS = {("contact", "creation"): 1, ("contact", "propertyChange"): 2, ("contact", "deletion"): 3,
                     ("company", "creation"): 4, ("company", "propertyChange"): 5, ("company", "deletion"): 6}


def event_json(change: Change, index: int, app_id: int) -> dict[str, Any]:
    singular = OBJECT_TYPES[change.object_type]
    event: dict[str, Any] = {
        # Stable across delivery attempts: the version's sequence number and the change's index.
        "eventId": change.version_seq * 1000 + index,
        "subscriptionId": _SUBSCRIPTION_IDS[(singular, change.kind)],
        "portalId": PORTAL_ID,
        "appId": app_id,
        "occurredAt": int(change.occurred_at * 1000),
        "subscriptionType": f"{singular}.{change.kind}",
        "attemptNumber": 0,
        "objectId": change.record_id,
        "changeSource": "INTEGRATION",
    }
    if change.kind == "propertyChange":
        event["propertyName"] = change.property_name
        event["propertyValue"] = change.property_value
    else:
        event["changeFlag"] = "CREATED" if change.kind == "creation" else "DELETED"
    return event


class WebhookDeliverer:
    """Posts queued events in batches from one daemon thread, so a slow or dead subscriber never
    holds up an API request. Failed batches are retried with backoff, each attempt logged."""

    def __init__(self, store: HubSpotStore) -> None:
        self._store = store
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def publish(self, changes: list[Change]) -> None:
        if not changes:
            return
        webhook = self._store.settings().get("webhook")
        if not webhook:
            return
        for index, change in enumerate(changes):
            self._queue.put(event_json(change, index, int(webhook["app_id"])))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="hubspot-webhooks", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=5.0, follow_redirects=False) as client:
            while True:
                batch = [self._queue.get()]
                while len(batch) < 100:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                try:
                    self._deliver(client, batch)
                except Exception:  # never let one bad batch stop deliveries
                    log.exception("hubspot webhook delivery failed")

    def _deliver(self, client: httpx.Client, events: list[dict[str, Any]]) -> None:
        batch_id = uuid.uuid4().hex
        settings = self._store.settings()
        max_attempts = int(settings.get("webhook_max_attempts", 4))
        base_s = float(settings.get("webhook_retry_base_s", 0.2))
        for attempt in range(max_attempts):
            webhook = self._store.settings().get("webhook")
            if not webhook:
                return  # unsubscribed meanwhile
            target = webhook["target_url"]
            body = json.dumps([{**e, "attemptNumber": attempt} for e in events], separators=(",", ":")).encode()
            timestamp = str(int(time.time() * 1000))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "HubSpot Webhooks (agency sandbox)",
                "X-HubSpot-Request-Timestamp": timestamp,
                "X-HubSpot-Signature-v3": sign_v3(webhook["client_secret"], "POST", target, body, timestamp),
            }
            status: int | None = None
            error: str | None = None
            try:
                status = client.post(target, content=body, headers=headers).status_code
            except httpx.HTTPError as exc:
                error = repr(exc)[:300]
            self._store.log_attempt(batch_id, attempt, target, status, error, [e["eventId"] for e in events])
            if status is not None and 200 <= status < 300:
                return
            time.sleep(base_s * 2 ** attempt)


# ---- routes --------------------------------------------------------------------------------
def create_router(ctx: SandboxContext) -> APIRouter:
    router = APIRouter()
    store = HubSpotStore(ctx.db_path, UNIQUE_PROPERTIES)
    webhooks = WebhookDeliverer(store)

    def authorize(request: Request) -> None:
        if not token_accepted(ctx.credentials, "hubspot", bearer_token(request)):
            raise Refused(hubspot_error(
                401, "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
            ))

    def authorize_sandbox(request: Request) -> None:
        # Admin routes take the sandbox's own token even while the face's tokens are rotated.
        token = bearer_token(request)
        if not token or not any(hmac.compare_digest(token.encode(), t.encode()) for t in ctx.credentials.default):
            raise Refused(hubspot_error(401, "INVALID_AUTHENTICATION", "the sandbox token is required"))

    def object_type_of(name: str) -> str:
        if name not in OBJECT_TYPES:
            raise _invalid(f"Unable to infer object type from: {name}")
        return name

    async def json_body(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise _invalid("Invalid input JSON on line 1: the body is not JSON") from None

    def resolve_id(object_type: str, record_id: str, id_property: str | None) -> int | None:
        """The record id for ``record_id`` (numeric id, or a unique value under ``id_property``)."""
        if id_property and id_property != "hs_object_id":
            if id_property not in UNIQUE_PROPERTIES[object_type]:
                raise _invalid(f"{id_property} is not a unique identifier property of {object_type}")
            found = store.find_unique(object_type, id_property, record_id)
            return found.id if found else None
        return int(record_id) if record_id.isdigit() else None

    def handled(handler):
        """Answer a :class:`Refused` raised anywhere in ``handler`` with its response."""
        @functools.wraps(handler)  # FastAPI reads the wrapped handler's parameters
        async def run(request: Request, **kwargs: Any) -> Response:
            try:
                return await handler(request, **kwargs)
            except Refused as refused:
                return refused.response
        return run

    # ---- objects -----------------------------------------------------------------------
    @router.get("/crm/v3/objects/{object_type}")
    @handled
    async def list_objects(request: Request, object_type: str) -> Response:
        authorize(request)
        object_type = object_type_of(object_type)
        query = request.query_params
        try:
            limit = min(max(int(query.get("limit") or 10), 1), LIST_MAX_LIMIT)
            after = int(query.get("after") or 0)
        except ValueError:
            raise _invalid("limit and after must be integers") from None
        archived = query.get("archived", "false").lower() == "true"
        requested = property_list(query.getlist("properties"))
        records, more = await run_in_threadpool(store.list_page, object_type, after=after, limit=limit, archived=archived)
        body: dict[str, Any] = {"results": [record_json(r, requested) for r in records]}
        if more and records:
            next_after = str(records[-1].id)
            link = str(request.url.include_query_params(after=next_after))
            body["paging"] = {"next": {"after": next_after, "link": link}}
        return JSONResponse(body)

    @router.post("/crm/v3/objects/{object_type}")
    @handled
    async def create_object(request: Request, object_type: str) -> Response:
        authorize(request)
        object_type = object_type_of(object_type)
        payload = await json_body(request)
        if not isinstance(payload, dict):
            raise _invalid("Invalid input JSON: expected an object with properties")
        properties = validate_properties(object_type, payload.get("properties") or {})
        result = await run_in_threadpool(store.create, object_type, properties)
        if result.conflict is not None:
            return conflict_response(object_type, result)
        await run_in_threadpool(webhooks.publish, result.changes)
        assert result.record is not None
        return JSONResponse(record_json(result.record, list(properties)), 201)

    @router.post("/crm/v3/objects/{object_type}/search")
    @handled
    async def search_objects(request: Request, object_type: str) -> Response:
        authorize(request)
        object_type = object_type_of(object_type)
        search = _search_request(await json_body(request))
        records = await run_in_threadpool(store.indexed, object_type, time.time())
        return JSONResponse(run_search(records, search))

    @router.post("/crm/v3/objects/{object_type}/batch/upsert")
    @handled
    async def batch_upsert(request: Request, object_type: str) -> Response:
        authorize(request)
        object_type = object_type_of(object_type)
        payload = await json_body(request)
        inputs = payload.get("inputs") if isinstance(payload, dict) else None
        if not isinstance(inputs, list) or not inputs or len(inputs) > BATCH_MAX_INPUTS:
            raise _invalid(f"inputs must be a list of 1 to {BATCH_MAX_INPUTS} objects")
        id_property: str | None = None
        parsed: list[tuple[str, dict[str, str]]] = []
        for item in inputs:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
                raise _invalid("each input needs an id (the value of its idProperty)")
            prop = item.get("idProperty")
            if prop not in UNIQUE_PROPERTIES[object_type]:
                raise _invalid(f"idProperty must be a unique value property of {object_type}, got {prop!r}")
            if id_property not in (None, prop):
                raise _invalid("all inputs of one batch must use the same idProperty")
            id_property = prop
            parsed.append((item["id"], validate_properties(object_type, item.get("properties") or {})))
        assert id_property is not None
        keys = [key.lower() if id_property == "email" else key for key, _ in parsed]
        if len(set(keys)) != len(keys):
            raise _invalid("Duplicate IDs found in batch input")
        started = time.time()
        outcome = await run_in_threadpool(store.upsert, object_type, id_property, parsed)
        if isinstance(outcome, WriteResult):
            return conflict_response(object_type, outcome)
        await run_in_threadpool(webhooks.publish, [c for r in outcome for c in r.changes])
        requested = sorted({name for _, props in parsed for name in props} | {id_property})
        results = []
        for result in outcome:
            assert result.record is not None
            results.append({**record_json(result.record, requested), "new": result.created})
        return JSONResponse({"status": "COMPLETE", "results": results, "startedAt": iso(started),
                             "completedAt": iso(time.time())})

    @router.get("/crm/v3/objects/{object_type}/{record_id}")
    @handled
    async def get_object(request: Request, object_type: str, record_id: str) -> Response:
        authorize(request)
        object_type = object_type_of(object_type)
        query = request.query_params
        archived = query.get("archived", "false").lower() == "true"
        resolved = await run_in_threadpool(resolve_id, object_type, record_id, query.get("idProperty"))
        record = None if resolved is None else await run_in_threadpool(store.get, object_type, resolved)
        if record is None or record.archived != archived:
            return not_found()
        return JSONResponse(record_json(record, property_list(query.getlist("properties"))))

    @router.patch("/crm/v3/objects/{object_type}/{record_id}")
    @handled
    async def update_object(request: Request, object_type: str, record_id: str) -> Response:
        authorize(request)
        object_type = object_type_of(object_type)
        payload = await json_body(request)
        if not isinstance(payload, dict):
            raise _invalid("Invalid input JSON: expected an object with properties")
        properties = validate_properties(object_type, payload.get("properties") or {})
        resolved = await run_in_threadpool(resolve_id, object_type, record_id, request.query_params.get("idProperty"))
        if resolved is None:
            return not_found()
        result = await run_in_threadpool(store.update, object_type, resolved, properties)
        if result.conflict is not None:
            return conflict_response(object_type, result)
        if result.record is None:
            return not_found()
        await run_in_threadpool(webhooks.publish, result.changes)
        return JSONResponse(record_json(result.record, list(properties)))

    @router.delete("/crm/v3/objects/{object_type}/{record_id}")
    @handled
    async def archive_object(request: Request, object_type: str, record_id: str) -> Response:
        authorize(request)
        object_type = object_type_of(object_type)
        resolved = int(record_id) if record_id.isdigit() else None
        result = None if resolved is None else await run_in_threadpool(store.archive, object_type, resolved)
        if result is None or result.record is None:
            return not_found()
        # Archiving an archived record is a no-op that succeeds, as on HubSpot.
        await run_in_threadpool(webhooks.publish, result.changes)
        return Response(status_code=204)

    # ---- webhook settings (HubSpot's app API) -------------------------------------------
    def settings_json(webhook: dict[str, Any]) -> dict[str, Any]:
        return {"targetUrl": webhook["target_url"], "throttling": webhook["throttling"],
                "createdAt": webhook["created_at"], "updatedAt": webhook["updated_at"]}

    @router.put("/webhooks/v3/{app_id}/settings")
    @handled
    async def put_webhook_settings(request: Request, app_id: str) -> Response:
        authorize_sandbox(request)
        if not app_id.isdigit():
            raise _invalid("appId must be numeric")
        payload = await json_body(request)
        if not isinstance(payload, dict) or not isinstance(payload.get("targetUrl"), str):
            raise _invalid("targetUrl is required")
        target = payload["targetUrl"]
        if not re.match(r"^https?://[^\s]+$", target):
            raise _invalid(f"targetUrl {target!r} is not a valid URL")
        current = (await run_in_threadpool(store.settings)).get("webhook") or {}
        secret = payload.get("clientSecret") or (current.get("client_secret") if current.get("app_id") == app_id else None)
        if not isinstance(secret, str) or not secret:
            raise _invalid("clientSecret (sandbox only: the app's client secret that signs deliveries) is required")
        throttling = payload.get("throttling") or {"maxConcurrentRequests": 10, "period": "SECONDLY"}
        now = iso(time.time())
        webhook = {"app_id": app_id, "target_url": target, "client_secret": secret, "throttling": throttling,
                   "created_at": current.get("created_at", now), "updated_at": now}
        await run_in_threadpool(store.put_settings, {"webhook": webhook})
        return JSONResponse(settings_json(webhook))

    @router.get("/webhooks/v3/{app_id}/settings")
    @handled
    async def get_webhook_settings(request: Request, app_id: str) -> Response:
        authorize_sandbox(request)
        webhook = (await run_in_threadpool(store.settings)).get("webhook")
        if not webhook or webhook["app_id"] != app_id:
            return not_found()
        return JSONResponse(settings_json(webhook))

    @router.delete("/webhooks/v3/{app_id}/settings")
    @handled
    async def delete_webhook_settings(request: Request, app_id: str) -> Response:
        authorize_sandbox(request)
        webhook = (await run_in_threadpool(store.settings)).get("webhook")
        if webhook and webhook["app_id"] == app_id:
            await run_in_threadpool(store.put_settings, {"webhook": None})
        return Response(status_code=204)

    # ---- sandbox-only controls ----------------------------------------------------------
    _TUNABLES = {"index_lag_s": (0.0, 3600.0), "webhook_max_attempts": (1, 20), "webhook_retry_base_s": (0.0, 60.0)}

    @router.get("/_sandbox/settings")
    @handled
    async def get_sandbox_settings(request: Request) -> Response:
        authorize_sandbox(request)
        settings = await run_in_threadpool(store.settings)
        return JSONResponse({name: settings.get(name) for name in _TUNABLES})

    @router.put("/_sandbox/settings")
    @handled
    async def put_sandbox_settings(request: Request) -> Response:
        """Set tunables; ``null`` restores a default (index lag 0, 4 attempts, 0.2 s backoff)."""
        authorize_sandbox(request)
        payload = await json_body(request)
        if not isinstance(payload, dict) or set(payload) - set(_TUNABLES):
            raise _invalid(f"settings take only {sorted(_TUNABLES)}")
        for name, value in payload.items():
            low, high = _TUNABLES[name]
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not low <= value <= high):
                raise _invalid(f"{name} must be a number in [{low}, {high}]")
        settings = await run_in_threadpool(store.put_settings, payload)
        return JSONResponse({name: settings.get(name) for name in _TUNABLES})

    @router.post("/_sandbox/index/refresh")
    @handled
    async def refresh_index(request: Request) -> Response:
        authorize_sandbox(request)
        return JSONResponse({"refreshed": await run_in_threadpool(store.refresh_index)})

    @router.get("/_sandbox/webhooks/attempts")
    @handled
    async def list_webhook_attempts(request: Request) -> Response:
        authorize_sandbox(request)
        after_seq = int(request.query_params.get("after_seq") or 0)
        rows = await run_in_threadpool(store.attempts, after_seq)
        return JSONResponse({"attempts": [{**row, "at": iso(row["at"])} for row in rows]})

    return router


FACE = ProviderFace(name="hubspot", build=create_router, error=error_response)
