"""Sandbox face: Google Analytics 4 Data API v1beta (``properties/{id}:runReport``).

A view over the sandbox channel's own world: each post's clicks are sessions and its conversions
key events, tagged the way our links are (``utm_campaign`` = campaign id → dimension
``sessionCampaignName``, ``utm_content`` = item id → ``sessionManualAdContent``), with
``sessionSource`` = the post's channel. Every property sees every post (one site).

Like real GA4 the data is eventually consistent: what happened in the most recent
``processing_lag`` of simulated time is not in reports yet, so a report on a live post grows
between two reads. ``PUT /ga4/_sandbox/processing-lag`` ``{"simulated_s": x}`` (sandbox token)
sets it; default 1,800 simulated seconds (half a real second at the default time scale).

Dates: the sandbox credits a post's sessions to the (UTC) day it was published; a date range
keeps the posts published inside it. Dates are ``YYYY-MM-DD``, ``today``, ``yesterday`` or
``NdaysAgo``.

Request subset: ``dateRanges`` (1-4), ``dimensions`` (``sessionCampaignName``,
``sessionManualAdContent``, ``sessionSource``), ``metrics`` (``sessions``, ``keyEvents``,
``screenPageViews`` = impressions), ``dimensionFilter`` (``filter`` with ``stringFilter`` or
``inListFilter``, ``andGroup``, ``orGroup``, ``notExpression``), ``limit``, ``offset``,
``keepEmptyRows``. Rows are ordered by dimension values. Unknown names are 400 INVALID_ARGUMENT.
"""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from agency.sandbox.providers import ProviderFace, SandboxContext
from agency.sandbox.providers.common import bearer_token, google_status, token_accepted
from agency.sandbox.providers.google_ads import metrics_at, posts_as_of, sandbox_admin
from agency.sandbox.store import Post, SandboxStore

DEFAULT_PROCESSING_LAG_S = 1_800.0
MAX_LIMIT = 250_000
_DIMENSIONS = {
    "sessionCampaignName": lambda post: post.campaign_id,
    "sessionManualAdContent": lambda post: post.item_id,
    "sessionSource": lambda post: post.channel,
}
_METRICS = {"sessions": "clicks", "keyEvents": "conversions", "screenPageViews": "impressions"}
_DAYS_AGO = re.compile(r"^(\d{1,4})daysAgo$")


class GaError(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def error_response(status_code: int, message: str, retry_after_s: float | None = None) -> JSONResponse:
    """An error in this provider's documented shape."""
    return JSONResponse({"error": {"code": status_code, "message": message, "status": google_status(status_code)}}, status_code)


def invalid(message: str) -> GaError:
    return GaError(400, message)


def _date(value: Any, today: date, field: str) -> date:
    if not isinstance(value, str):
        raise invalid(f"{field} is required.")
    if value == "today":
        return today
    if value == "yesterday":
        return today - timedelta(days=1)
    match = _DAYS_AGO.match(value)
    if match:
        return today - timedelta(days=int(match.group(1)))
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise invalid(f"Invalid {field} {value!r}: use YYYY-MM-DD, today, yesterday or NdaysAgo.") from None


def _names(items: Any, known: dict, kind: str) -> list[str]:
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items):
        raise invalid(f"{kind}s must be a list of {{\"name\": ...}} objects.")
    names = [i["name"] for i in items]
    for name in names:
        if name not in known:
            raise invalid(f"Field {name} is not a valid {kind}. Did you mean one of {sorted(known)}?")
    if len(set(names)) != len(names):
        raise invalid(f"Duplicate {kind} names in the request.")
    return names


def _filter_matches(expression: Any, post: Post) -> bool:
    """Evaluate a FilterExpression against one post's dimension values."""
    if not isinstance(expression, dict) or len(expression) != 1:
        raise invalid("A filter expression must have exactly one of andGroup, orGroup, notExpression, filter.")
    kind, value = next(iter(expression.items()))
    if kind in ("andGroup", "orGroup"):
        expressions = value.get("expressions") if isinstance(value, dict) else None
        if not isinstance(expressions, list):
            raise invalid(f"{kind}.expressions must be a list.")
        results = (_filter_matches(e, post) for e in expressions)
        return all(results) if kind == "andGroup" else any(results)
    if kind == "notExpression":
        return not _filter_matches(value, post)
    if kind != "filter" or not isinstance(value, dict):
        raise invalid(f"Unsupported filter expression {kind!r}.")
    field = value.get("fieldName")
    if field not in _DIMENSIONS:
        raise invalid(f"Filter fieldName {field!r} is not a valid dimension.")
    actual = _DIMENSIONS[field](post)
    if "stringFilter" in value:
        spec = value["stringFilter"]
        wanted = spec.get("value")
        if not isinstance(wanted, str):
            raise invalid("stringFilter.value must be a string.")
        left, right = (actual, wanted) if spec.get("caseSensitive") else (actual.lower(), wanted.lower())
        match_type = spec.get("matchType", "EXACT")
        tests = {
            "EXACT": lambda: left == right,
            "BEGINS_WITH": lambda: left.startswith(right),
            "ENDS_WITH": lambda: left.endswith(right),
            "CONTAINS": lambda: right in left,
            "FULL_REGEXP": lambda: re.fullmatch(wanted, actual) is not None,
            "PARTIAL_REGEXP": lambda: re.search(wanted, actual) is not None,
        }
        if match_type not in tests:
            raise invalid(f"Unsupported stringFilter.matchType {match_type!r}.")
        return tests[match_type]()
    if "inListFilter" in value:
        spec = value["inListFilter"]
        values = spec.get("values")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise invalid("inListFilter.values must be a list of strings.")
        if spec.get("caseSensitive"):
            return actual in values
        return actual.lower() in {v.lower() for v in values}
    raise invalid("A filter needs stringFilter or inListFilter.")


class ProcessingLag(BaseModel):
    simulated_s: float = Field(ge=0, le=30 * 86_400)


def create_router(ctx: SandboxContext) -> APIRouter:
    router = APIRouter()
    store = SandboxStore(ctx.db_path)
    state = {"lag_s": DEFAULT_PROCESSING_LAG_S}

    def report(payload: dict[str, Any]) -> dict[str, Any]:
        dimensions = _names(payload.get("dimensions"), _DIMENSIONS, "dimension")
        metrics = _names(payload.get("metrics"), _METRICS, "metric")
        if not metrics:
            raise invalid("At least one metric is required.")
        limit = payload.get("limit", 10_000)
        offset = payload.get("offset", 0)
        try:
            limit, offset = int(limit), int(offset)  # int64 may arrive as JSON strings
        except (TypeError, ValueError):
            raise invalid("limit and offset must be integers.") from None
        if not 0 < limit <= MAX_LIMIT or offset < 0:
            raise invalid(f"limit must be in 1..{MAX_LIMIT} and offset >= 0.")
        ranges = payload.get("dateRanges")
        if not isinstance(ranges, list) or not 1 <= len(ranges) <= 4:
            raise invalid("dateRanges must list 1 to 4 ranges.")
        posts, now = posts_as_of(store)
        today = datetime.fromtimestamp(now, tz=timezone.utc).date()
        spans = []
        for r in ranges:
            if not isinstance(r, dict):
                raise invalid("Each date range must be an object.")
            start = _date(r.get("startDate"), today, "startDate")
            end = _date(r.get("endDate"), today, "endDate")
            if start > end:
                raise invalid(f"startDate {start} is after endDate {end}.")
            spans.append((start, end))
        expression = payload.get("dimensionFilter")

        totals: dict[tuple[str, ...], list[int]] = {}
        for post in posts:
            published = datetime.fromtimestamp(post.created_at, tz=timezone.utc).date()
            if not any(start <= published <= end for start, end in spans):
                continue
            if expression is not None and not _filter_matches(expression, post):
                continue
            # Eventual consistency: the newest processing_lag of simulated time is not in yet.
            processed = max(0.0, post.elapsed_simulated_s(now, ctx.time_scale) - state["lag_s"])
            counters = metrics_at(post, processed)
            key = tuple(_DIMENSIONS[d](post) for d in dimensions)
            row = totals.setdefault(key, [0] * len(metrics))
            for i, name in enumerate(metrics):
                row[i] += getattr(counters, _METRICS[name])
        keep_empty = bool(payload.get("keepEmptyRows", False))
        ordered = sorted((k, v) for k, v in totals.items() if keep_empty or any(v))
        page = ordered[offset : offset + limit]
        body: dict[str, Any] = {
            "dimensionHeaders": [{"name": d} for d in dimensions],
            "metricHeaders": [{"name": m, "type": "TYPE_INTEGER"} for m in metrics],
            "rows": [
                {"dimensionValues": [{"value": v} for v in key], "metricValues": [{"value": str(v)} for v in values]}
                for key, values in page
            ],
            "rowCount": len(ordered),
            "metadata": {"currencyCode": "USD", "timeZone": "Etc/UTC"},
            "kind": "analyticsData#runReport",
        }
        if not body["rows"]:
            del body["rows"]  # GA4 omits empty repeated fields
        return body

    @router.post("/v1beta/properties/{property_id}:runReport")
    async def run_report(property_id: str, request: Request):
        try:
            if not token_accepted(ctx.credentials, FACE.name, bearer_token(request)):
                raise GaError(401, "Request had invalid authentication credentials.")
            if not property_id.isdigit():
                raise invalid(f"Invalid property id {property_id!r}: must be numeric.")
            try:
                payload = await request.json()
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                raise invalid("The body must be a JSON object.")
            return JSONResponse(await run_in_threadpool(report, payload))
        except GaError as error:
            return error_response(error.status_code, error.message)

    @router.get("/_sandbox/processing-lag")
    def get_lag(request: Request):
        if not sandbox_admin(ctx, request):
            return error_response(401, "sandbox token required")
        return {"simulated_s": state["lag_s"], "as_of": time.time()}

    @router.put("/_sandbox/processing-lag")
    def set_lag(body: ProcessingLag, request: Request):
        if not sandbox_admin(ctx, request):
            return error_response(401, "sandbox token required")
        state["lag_s"] = body.simulated_s
        return {"simulated_s": body.simulated_s}

    return router


FACE = ProviderFace(name="ga4", build=create_router, error=error_response)
