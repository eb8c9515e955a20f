"""Sandbox face: Google Ads API REST v17 (GAQL search, campaign budgets, campaign status).

A view over the sandbox channel's own world, not a second one: every post is a campaign
``customers/{cid}/campaigns/{post id}`` with the budget ``customers/{cid}/campaignBudgets/{post id}``
(a total of 0 until it is promoted: providers publish organically and the campaign's budget is
then set here). Metrics come from the post's audience model at the
current simulated time, so they equal ``GET /v1/posts/{id}/metrics`` read at the same instant;
budget changes go through the channel store's budget change, so pacing and spend stay the ones
the channel reports. Every customer id sees every campaign (the sandbox has one advertiser).

Routes (``Authorization: Bearer``, header ``developer-token`` required):

* ``POST /v17/customers/{cid}/googleAds:search`` ``{"query": GAQL, "pageToken"?}`` →
  ``{"results": [...], "nextPageToken"?, "fieldMask"}``. GAQL subset: ``SELECT f, ... FROM
  campaign|campaign_budget [WHERE f IN (...) | f = v | f != v [AND ...]] [ORDER BY f [ASC|DESC],
  ...] [LIMIT n]``; anything else is 400 INVALID_ARGUMENT with a ``queryError``. Page tokens pin
  the page to the first page's instant, so pages of one result set agree with each other.
* ``POST /v17/customers/{cid}/campaignBudgets:mutate`` — ``update`` with ``totalAmountMicros``
  (the new total, including spend). A total equal to the current one changes nothing, so
  repeating an update is harmless. Below the spend so far: 400 with
  ``campaignBudgetError: TOTAL_AMOUNT_TOO_SMALL`` and (a sandbox extension: live Google Ads does
  not report it) ``details.spentAmountMicros``.
* ``POST /v17/customers/{cid}/campaigns:mutate`` — ``update`` with ``status`` ENABLED|PAUSED.
  Pausing sets the post's budget to its spend so far (delivery stops) and remembers the total;
  enabling restores that total, paced over what remains of the flight. While paused,
  ``campaign_budget.total_amount_micros`` shows (and budget updates change) the remembered total.
* ``PUT /google-ads/_sandbox/page-size`` ``{"page_size": n}`` (sandbox token): rows per search
  page (Google's is fixed at 10,000; tests shrink it to exercise paging).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from agency.sandbox import sqlite
from agency.sandbox.audience import SimulatedMetrics, audience_model
from agency.sandbox.providers import ProviderFace, SandboxContext
from agency.sandbox.providers.common import bearer_token, google_status, token_accepted
from agency.sandbox.store import Post, SandboxStore

API_VERSION = "v17"
FAILURE_TYPE = f"type.googleapis.com/google.ads.googleads.{API_VERSION}.errors.GoogleAdsFailure"
MICROS_PER_CENT = 10_000
DEFAULT_PAGE_SIZE = 10_000
_MAX_BUDGET_CENTS = 10**12
_CUSTOMER_ID = re.compile(r"^\d{1,20}$")

_STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS google_ads_campaign_states (
    post_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    resume_budget_cents INTEGER,
    updated_at REAL NOT NULL
);
"""


# ---- the shared world ------------------------------------------------------------------
def metrics_at(post: Post, elapsed_simulated_s: float) -> SimulatedMetrics:
    """The post's cumulative audience metrics at a simulated time (the channel's own model)."""
    model = audience_model(
        post.id, post.channel, post.title, post.body, post.published_budget_cents,
        [(c.at_simulated_s, c.budget_cents) for c in post.budget_changes],
    )
    return model.at(elapsed_simulated_s)


def spend_at(post: Post, elapsed_simulated_s: float) -> int:
    return metrics_at(post, elapsed_simulated_s).spend_cents


def posts_as_of(store: SandboxStore, as_of: float | None = None) -> tuple[list[Post], float]:
    """Every post and the instant to evaluate them at.

    The clock is read BEFORE the posts: a budget change committed in between carries a later
    ``at_simulated_s`` than our instant, so evaluating at our instant ignores it exactly as the
    channel would have (pacing segments only ever start in the future of their change).
    """
    now = time.time() if as_of is None else as_of
    return store.list_posts(), now


# ---- errors ----------------------------------------------------------------------------
class AdsError(Exception):
    def __init__(
        self,
        status_code: int,
        error_code: dict[str, str],
        message: str,
        *,
        details: dict[str, Any] | None = None,
        trigger: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code
        self.message = message
        self.details = details
        self.trigger = trigger

    def response(self) -> JSONResponse:
        error: dict[str, Any] = {"errorCode": self.error_code, "message": self.message}
        if self.trigger is not None:
            error["trigger"] = self.trigger
        if self.details is not None:
            error["details"] = self.details
        return failure_response(self.status_code, [error])


def failure_response(status_code: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None) -> JSONResponse:
    top_message = {400: "Request contains an invalid argument.", 401: "Request is missing required authentication credential.",
                   429: "Resource has been exhausted (e.g. check quota)."}.get(status_code, "The request failed.")
    body = {"error": {
        "code": status_code,
        "message": top_message,
        "status": google_status(status_code),
        "details": [{"@type": FAILURE_TYPE, "errors": errors, "requestId": uuid.uuid4().hex[:22]}],
    }}
    return JSONResponse(body, status_code, headers=headers)


def error_response(status_code: int, message: str, retry_after_s: float | None = None) -> JSONResponse:
    """An error in this provider's documented shape."""
    if status_code == 429:
        error: dict[str, Any] = {"errorCode": {"quotaError": "RESOURCE_EXHAUSTED"}, "message": message}
        if retry_after_s is not None:
            error["details"] = {"quotaErrorDetails": {
                "rateScope": "ACCOUNT", "rateName": "Requests per account", "retryDelay": f"{retry_after_s:g}s",
            }}
        return failure_response(429, [error])
    code = {"internalError": "INTERNAL_ERROR"} if status_code >= 500 else {"requestError": "UNKNOWN"}
    return failure_response(status_code, [{"errorCode": code, "message": message}])


def query_error(code: str, message: str) -> AdsError:
    return AdsError(400, {"queryError": code}, message)


# ---- GAQL (the subset the adapters need) -------------------------------------------------
@dataclass(frozen=True)
class Condition:
    field: str
    operator: str  # IN, =, !=
    values: tuple[str, ...]


@dataclass(frozen=True)
class Query:
    fields: tuple[str, ...]
    resource: str
    conditions: tuple[Condition, ...]
    order_by: tuple[tuple[str, bool], ...]  # (field, descending)
    limit: int | None


_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<op>!=|=|\(|\)|,))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise query_error("UNEXPECTED_INPUT", f"Error in query: unexpected input {text[pos:pos + 20]!r}.")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append((kind, value))
        pos = match.end()
    return out


def parse_gaql(text: str, fields_of: Callable[[str], dict[str, Any] | None]) -> Query:
    """Parse ``text``; ``fields_of(resource)`` gives the selectable fields of a FROM resource."""
    tokens = _tokens(text)
    pos = 0

    def peek_keyword(*words: str) -> bool:
        return pos < len(tokens) and tokens[pos][0] == "name" and tokens[pos][1].upper() in words

    def take(kind: str | None = None, value: str | None = None, what: str = "a token") -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise query_error("UNEXPECTED_END_OF_QUERY", f"Error in query: expected {what}.")
        token_kind, token_value = tokens[pos]
        if (kind is not None and token_kind != kind) or (value is not None and token_value.upper() != value):
            raise query_error("UNEXPECTED_INPUT", f"Error in query: expected {what}, got {token_value!r}.")
        pos += 1
        return token_value

    def field_name() -> str:
        return take("name", what="a field name")

    def value() -> str:
        # Values compare by their string form: ids are int64 (JSON strings) in Google Ads.
        if pos < len(tokens) and tokens[pos][0] == "op":
            raise query_error("UNEXPECTED_INPUT", f"Error in query: expected a value, got {tokens[pos][1]!r}.")
        return take(what="a value")

    take("name", "SELECT", "SELECT")
    selected = [field_name()]
    while pos < len(tokens) and tokens[pos] == ("op", ","):
        pos += 1
        selected.append(field_name())
    take("name", "FROM", "FROM")
    resource = take("name", what="a resource name")
    known = fields_of(resource)
    if known is None:
        raise query_error("BAD_RESOURCE_TYPE_IN_FROM_CLAUSE", f"Error in query: unsupported resource {resource!r}.")

    def check(name: str) -> str:
        if name not in known:
            raise query_error("UNRECOGNIZED_FIELD", f"Unrecognized field in the query: '{name}'.")
        return name

    for name in selected:
        check(name)
    conditions: list[Condition] = []
    if peek_keyword("WHERE"):
        pos += 1
        while True:
            name = check(field_name())
            if peek_keyword("IN"):
                pos += 1
                take("op", "(", "(")
                values = [value()]
                while pos < len(tokens) and tokens[pos] == ("op", ","):
                    pos += 1
                    values.append(value())
                take("op", ")", ")")
                conditions.append(Condition(name, "IN", tuple(values)))
            else:
                operator = take("op", what="an operator (IN, =, !=)")
                if operator not in ("=", "!="):
                    raise query_error("UNEXPECTED_INPUT", f"Error in query: unsupported operator {operator!r}.")
                conditions.append(Condition(name, operator, (value(),)))
            if not peek_keyword("AND"):
                break
            pos += 1
    order_by: list[tuple[str, bool]] = []
    if peek_keyword("ORDER"):
        pos += 1
        take("name", "BY", "BY")
        while True:
            name = check(field_name())
            descending = False
            if peek_keyword("ASC", "DESC"):
                descending = tokens[pos][1].upper() == "DESC"
                pos += 1
            order_by.append((name, descending))
            if not (pos < len(tokens) and tokens[pos] == ("op", ",")):
                break
            pos += 1
    limit = None
    if peek_keyword("LIMIT"):
        pos += 1
        raw = take("number", what="a row limit")
        if not raw.isdigit() or int(raw) <= 0:
            raise query_error("LIMIT_VALUE_NOT_POSITIVE", "Error in query: LIMIT must be a positive integer.")
        limit = int(raw)
    if pos != len(tokens):
        raise query_error("UNEXPECTED_INPUT", f"Error in query: unexpected {tokens[pos][1]!r}.")
    return Query(tuple(selected), resource, tuple(conditions), tuple(order_by), limit)


# ---- rows --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CampaignRow:
    customer_id: str
    post: Post
    metrics: SimulatedMetrics
    status: str
    total_budget_cents: int

    def campaign_name(self) -> str:
        return f"customers/{self.customer_id}/campaigns/{self.post.id}"

    def budget_name(self) -> str:
        return f"customers/{self.customer_id}/campaignBudgets/{self.post.id}"


# field -> (JSON object key, JSON field key, value getter). int64 values are JSON strings.
_FIELDS: dict[str, tuple[str, str, Callable[[CampaignRow], Any]]] = {
    "campaign.resource_name": ("campaign", "resourceName", CampaignRow.campaign_name),
    "campaign.id": ("campaign", "id", lambda r: r.post.id),
    "campaign.name": ("campaign", "name", lambda r: f"{r.post.campaign_id} / {r.post.item_id}"),
    "campaign.status": ("campaign", "status", lambda r: r.status),
    "campaign.campaign_budget": ("campaign", "campaignBudget", CampaignRow.budget_name),
    "campaign_budget.resource_name": ("campaignBudget", "resourceName", CampaignRow.budget_name),
    "campaign_budget.id": ("campaignBudget", "id", lambda r: r.post.id),
    "campaign_budget.total_amount_micros": (
        "campaignBudget", "totalAmountMicros", lambda r: str(r.total_budget_cents * MICROS_PER_CENT)),
    "metrics.impressions": ("metrics", "impressions", lambda r: str(r.metrics.impressions)),
    "metrics.clicks": ("metrics", "clicks", lambda r: str(r.metrics.clicks)),
    "metrics.conversions": ("metrics", "conversions", lambda r: float(r.metrics.conversions)),
    "metrics.cost_micros": ("metrics", "costMicros", lambda r: str(r.metrics.spend_cents * MICROS_PER_CENT)),
}
_RESOURCE_FIELDS = {
    "campaign": {name: spec for name, spec in _FIELDS.items()},
    "campaign_budget": {name: spec for name, spec in _FIELDS.items() if name.startswith(("campaign_budget.", "metrics."))},
}
_RESOURCE_NAME_FIELD = {"campaign": "campaign.resource_name", "campaignBudget": "campaign_budget.resource_name"}


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, float):
        return (0, value)
    if isinstance(value, str) and value.isdigit():
        return (0, int(value))
    return (1, str(value))


def _row_json(row: CampaignRow, fields: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for name in fields:
        obj, key, get = _FIELDS[name]
        out.setdefault(obj, {})[key] = get(row)
    # Google returns each selected resource's resource name even when not selected.
    for obj, name_field in _RESOURCE_NAME_FIELD.items():
        if obj in out:
            _, key, get = _FIELDS[name_field]
            out[obj].setdefault(key, get(row))
    return out


def _matches(row: CampaignRow, condition: Condition) -> bool:
    value = _FIELDS[condition.field][2](row)
    text = format(value, "g") if isinstance(value, float) else str(value)
    if condition.operator == "IN":
        return text in condition.values
    if condition.operator == "=":
        return text == condition.values[0]
    return text != condition.values[0]


# ---- page tokens ---------------------------------------------------------------------------
def _query_digest(query_text: str) -> str:
    return hashlib.sha256(" ".join(query_text.split()).encode()).hexdigest()[:16]


def encode_page_token(query_text: str, offset: int, as_of: float) -> str:
    raw = json.dumps({"q": _query_digest(query_text), "o": offset, "t": as_of}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, query_text: str) -> tuple[int, float]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset, as_of, digest = int(data["o"]), float(data["t"]), str(data["q"])
    except (ValueError, KeyError, TypeError):
        raise AdsError(400, {"requestError": "INVALID_PAGE_TOKEN"}, "Page token is invalid.") from None
    if digest != _query_digest(query_text) or offset < 0:
        raise AdsError(400, {"requestError": "INVALID_PAGE_TOKEN"}, "Page token does not belong to this query.")
    return offset, as_of


# ---- face state ----------------------------------------------------------------------------
@dataclass
class CampaignState:
    status: str
    resume_budget_cents: int | None


class CampaignStates:
    """Pause bookkeeping in the sandbox's SQLite file (one connection per operation)."""

    def __init__(self, db_path) -> None:
        self._db_path = db_path
        with self._connect() as conn:
            conn.executescript(_STATE_SCHEMA)

    def _connect(self):
        return sqlite.connect(self._db_path)

    def all(self) -> dict[str, CampaignState]:
        with self._connect() as conn:
            rows = conn.execute("SELECT post_id, status, resume_budget_cents FROM google_ads_campaign_states").fetchall()
        return {r["post_id"]: CampaignState(r["status"], r["resume_budget_cents"]) for r in rows}

    def get(self, post_id: str) -> CampaignState:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT status, resume_budget_cents FROM google_ads_campaign_states WHERE post_id = ?", (post_id,)
            ).fetchone()
        return CampaignState(row["status"], row["resume_budget_cents"]) if row else CampaignState("ENABLED", None)

    def put(self, post_id: str, state: CampaignState) -> None:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO google_ads_campaign_states (post_id, status, resume_budget_cents, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (post_id) DO UPDATE SET status = excluded.status,"
                " resume_budget_cents = excluded.resume_budget_cents, updated_at = excluded.updated_at",
                (post_id, state.status, state.resume_budget_cents, time.time()),
            )
            conn.execute("COMMIT")


class PageSize(BaseModel):
    page_size: int = Field(ge=1, le=DEFAULT_PAGE_SIZE)


# ---- the router ----------------------------------------------------------------------------
def create_router(ctx: SandboxContext) -> APIRouter:
    router = APIRouter()
    store = SandboxStore(ctx.db_path)
    states = CampaignStates(ctx.db_path)
    settings = {"page_size": DEFAULT_PAGE_SIZE}

    def authenticate(request: Request, customer_id: str) -> None:
        if not token_accepted(ctx.credentials, FACE.name, bearer_token(request)):
            raise AdsError(401, {"authenticationError": "OAUTH_TOKEN_INVALID"},
                           "Request had invalid authentication credentials.")
        if not request.headers.get("developer-token", "").strip():
            raise AdsError(401, {"authenticationError": "DEVELOPER_TOKEN_PARAMETER_MISSING"},
                           "The developer-token header is required.")
        login = request.headers.get("login-customer-id")
        for value in (customer_id, login):
            if value is not None and not _CUSTOMER_ID.match(value):
                raise AdsError(400, {"requestError": "INVALID_CUSTOMER_ID"},
                               f"Customer id {value!r} is not a number without dashes.")

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise AdsError(400, {"requestError": "BAD_REQUEST"}, "The body must be a JSON object.")
        return payload

    def rows(customer_id: str, as_of: float | None) -> tuple[list[CampaignRow], float]:
        posts, now = posts_as_of(store, as_of)
        paused = states.all()
        out = []
        for post in posts:
            state = paused.get(post.id, CampaignState("ENABLED", None))
            total = state.resume_budget_cents if state.status == "PAUSED" and state.resume_budget_cents is not None \
                else post.budget_cents
            metrics = metrics_at(post, post.elapsed_simulated_s(now, ctx.time_scale))
            out.append(CampaignRow(customer_id, post, metrics, state.status, total))
        return out, now

    def search(customer_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        text = payload.get("query")
        if not isinstance(text, str) or not text.strip():
            raise query_error("UNEXPECTED_END_OF_QUERY", "The query is empty.")
        query = parse_gaql(text, _RESOURCE_FIELDS.get)
        offset, as_of = 0, None
        token = payload.get("pageToken")
        if token:
            offset, as_of = decode_page_token(str(token), text)
        found, now = rows(customer_id, as_of)
        selected = [r for r in found if all(_matches(r, c) for c in query.conditions)]
        selected.sort(key=lambda r: r.post.id)
        for name, descending in reversed(query.order_by):
            selected.sort(key=lambda r, n=name: _sort_key(_FIELDS[n][2](r)), reverse=descending)
        if query.limit is not None:
            selected = selected[: query.limit]
        page = selected[offset : offset + settings["page_size"]]
        reply: dict[str, Any] = {"results": [_row_json(r, query.fields) for r in page],
                                 "fieldMask": ",".join(_camel_path(f) for f in query.fields)}
        if offset + settings["page_size"] < len(selected):
            reply["nextPageToken"] = encode_page_token(text, offset + settings["page_size"], now)
        return reply

    def post_for(resource_name: Any, customer_id: str, collection: str) -> Post:
        prefix = f"customers/{customer_id}/{collection}/"
        if not isinstance(resource_name, str) or not resource_name.startswith(prefix):
            raise AdsError(400, {"fieldError": "INVALID_VALUE"} if isinstance(resource_name, str)
                           else {"fieldError": "REQUIRED"}, f"resourceName must look like {prefix}<id>.")
        post = store.get_post(resource_name[len(prefix):])
        if post is None:
            raise AdsError(400, {"mutateError": "RESOURCE_NOT_FOUND"}, f"Resource {resource_name} was not found.")
        return post

    def updates(payload: dict[str, Any], mask_field: str) -> list[dict[str, Any]]:
        operations = payload.get("operations")
        if not isinstance(operations, list) or not operations:
            raise AdsError(400, {"requestError": "OPERATIONS_REQUIRED"}, "At least one operation is required.")
        out = []
        for op in operations:
            update = op.get("update") if isinstance(op, dict) else None
            if not isinstance(update, dict):
                raise AdsError(400, {"requestError": "UNSUPPORTED_OPERATION"}, "Only update operations are supported.")
            mask = {m.strip() for m in str(op.get("updateMask", "")).split(",") if m.strip()}
            if mask != {mask_field}:
                raise AdsError(400, {"fieldMaskError": "FIELD_NOT_FOUND"}, f"updateMask must be {mask_field!r}.")
            out.append(update)
        return out

    def apply_budget(post: Post, budget_cents: int) -> str:
        """Set the post's total budget through the channel store (no change when equal)."""
        if post.budget_cents == budget_cents:
            return "unchanged"
        fingerprint = hashlib.sha256(json.dumps(["budget_update", post.id, budget_cents]).encode()).hexdigest()
        outcome = store.update_budget(
            post.id, f"google-ads:{uuid.uuid4().hex}", fingerprint, budget_cents,
            time_scale=ctx.time_scale, spend_at=spend_at,
        )
        if outcome.kind == "below_spend":
            spent = outcome.spent_cents * MICROS_PER_CENT
            raise AdsError(
                400, {"campaignBudgetError": "TOTAL_AMOUNT_TOO_SMALL"},
                f"The total budget is below the {spent} micros already spent.",
                trigger={"int64Value": str(budget_cents * MICROS_PER_CENT)},
                details={"spentAmountMicros": str(spent)},
            )
        return outcome.kind

    def freeze(post: Post) -> None:
        """Set the budget to the spend so far, read by the store inside its write transaction."""
        key = f"google-ads:{uuid.uuid4().hex}"
        fingerprint = hashlib.sha256(json.dumps(["budget_update", post.id, "pause"]).encode()).hexdigest()
        store.update_budget(
            post.id, key, fingerprint, 0, time_scale=ctx.time_scale, spend_at=spend_at, raise_to_spend=True
        )

    def spent_now(post: Post) -> int:
        return spend_at(post, post.elapsed_simulated_s(time.time(), ctx.time_scale))

    def mutate_budgets(customer_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        planned = []
        for update in updates(payload, "totalAmountMicros"):
            post = post_for(update.get("resourceName"), customer_id, "campaignBudgets")
            micros = update.get("totalAmountMicros")
            try:
                micros = int(micros)  # int64 arrives as a JSON string (numbers accepted too)
            except (TypeError, ValueError):
                raise AdsError(400, {"fieldError": "REQUIRED"}, "totalAmountMicros must be an int64.") from None
            if micros < 0 or micros > _MAX_BUDGET_CENTS * MICROS_PER_CENT:
                raise AdsError(400, {"campaignBudgetError": "MONEY_AMOUNT_TOO_LARGE" if micros > 0 else "MONEY_AMOUNT_LESS_THAN_CURRENCY_MINIMUM_CPC"},
                               "totalAmountMicros is out of range.")
            if micros % MICROS_PER_CENT:
                raise AdsError(400, {"campaignBudgetError": "NON_MULTIPLE_OF_MINIMUM_CURRENCY_UNIT"},
                               "totalAmountMicros must be a multiple of the currency's minimum unit (10000).")
            planned.append((post, micros // MICROS_PER_CENT))
        results = []
        for post, cents in planned:
            state = states.get(post.id)
            if state.status == "PAUSED":
                # Paused: delivery stays stopped; the new total applies when the campaign resumes.
                spent = spent_now(post)
                if cents < spent:
                    apply_budget(post, cents)  # raises the below-spend error with the exact spend
                states.put(post.id, CampaignState("PAUSED", cents))
            else:
                apply_budget(post, cents)
            results.append({"resourceName": f"customers/{customer_id}/campaignBudgets/{post.id}"})
        return {"results": results}

    def mutate_campaigns(customer_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        planned = []
        for update in updates(payload, "status"):
            post = post_for(update.get("resourceName"), customer_id, "campaigns")
            status = update.get("status")
            if status not in ("ENABLED", "PAUSED"):
                raise AdsError(400, {"campaignError": "INVALID_STATUS"}, "status must be ENABLED or PAUSED.")
            planned.append((post, status))
        results = []
        for post, status in planned:
            state = states.get(post.id)
            if status == "PAUSED" and state.status != "PAUSED":
                resume = post.budget_cents
                # A budget equal to the spend so far stops delivery without un-spending anything.
                freeze(store.get_post(post.id) or post)
                states.put(post.id, CampaignState("PAUSED", resume))
            elif status == "ENABLED" and state.status == "PAUSED":
                fresh = store.get_post(post.id) or post
                if state.resume_budget_cents is not None:
                    apply_budget(fresh, max(state.resume_budget_cents, spent_now(fresh)))
                states.put(post.id, CampaignState("ENABLED", None))
            results.append({"resourceName": f"customers/{customer_id}/campaigns/{post.id}"})
        return {"results": results}

    async def handle(request: Request, customer_id: str, action: Callable[[str, dict[str, Any]], dict[str, Any]]):
        try:
            authenticate(request, customer_id)
            payload = await body_of(request)
            return JSONResponse(await run_in_threadpool(action, customer_id, payload))
        except AdsError as error:
            return error.response()

    @router.post(f"/{API_VERSION}/customers/{{customer_id}}/googleAds:search")
    async def google_ads_search(customer_id: str, request: Request):
        return await handle(request, customer_id, search)

    @router.post(f"/{API_VERSION}/customers/{{customer_id}}/campaignBudgets:mutate")
    async def campaign_budgets_mutate(customer_id: str, request: Request):
        return await handle(request, customer_id, mutate_budgets)

    @router.post(f"/{API_VERSION}/customers/{{customer_id}}/campaigns:mutate")
    async def campaigns_mutate(customer_id: str, request: Request):
        return await handle(request, customer_id, mutate_campaigns)

    @router.put("/_sandbox/page-size")
    def set_page_size(body: PageSize, request: Request):
        if not sandbox_admin(ctx, request):
            return JSONResponse({"error": {"code": 401, "message": "sandbox token required", "status": "UNAUTHENTICATED"}}, 401)
        settings["page_size"] = body.page_size
        return {"page_size": body.page_size}

    return router


def sandbox_admin(ctx: SandboxContext, request: Request) -> bool:
    """Whether the caller holds the sandbox's own token (face admin routes)."""
    token = bearer_token(request)
    return bool(token) and any(hmac.compare_digest(token.encode(), t.encode()) for t in ctx.credentials.default)


def _camel_path(field: str) -> str:
    resource, _, name = field.partition(".")
    head, *rest = resource.split("_")
    first, *others = name.split("_")
    return ".".join([head + "".join(p.title() for p in rest), first + "".join(p.title() for p in others)])


FACE = ProviderFace(name="google-ads", build=create_router, error=error_response)
