"""Google Analytics 4 Data API (v1beta) adapter: ``properties/{id}:runReport``.

``runReport`` is a read-only POST, so every request is retried in-call on 429/5xx. A report is
fetched in pages of ``limit`` rows by ``offset`` until ``rowCount`` rows have arrived.

GA4 data is eventually consistent: the most recent hours are not in reports yet, and two reads
of the same range can grow. Callers treat a report as "at least this much", never as final.

Our links carry ``utm_campaign`` = campaign id and ``utm_content`` = item id, which GA4 reports
as the session dimensions ``sessionCampaignName`` and ``sessionManualAdContent``; conversions
are the ``keyEvents`` metric (GA4's newer name for them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agency.integrations.ads import google_error_reader
from agency.integrations.http import CredentialSource, ProviderAdapter, ProviderHttp, json_object
from agency.integrations.reliability import RetryPolicy

PROVIDER = "ga4"
CAMPAIGN_DIMENSION = "sessionCampaignName"
ITEM_DIMENSION = "sessionManualAdContent"
MAX_PAGE_ROWS = 250_000  # the API's own cap per request


@dataclass(frozen=True)
class Ga4Row:
    dimensions: tuple[str, ...]
    metrics: tuple[str, ...]


@dataclass(frozen=True)
class Ga4Report:
    dimension_headers: tuple[str, ...]
    metric_headers: tuple[str, ...]
    rows: tuple[Ga4Row, ...]
    row_count: int
    currency_code: str | None
    time_zone: str | None
    data_loss_from_other_row: bool

    def records(self) -> list[dict[str, str]]:
        """Each row as ``{header: value}`` (dimensions and metrics together)."""
        names = self.dimension_headers + self.metric_headers
        return [dict(zip(names, row.dimensions + row.metrics)) for row in self.rows]


@dataclass(frozen=True)
class ItemEngagement:
    campaign_id: str
    item_id: str
    sessions: int
    key_events: int


def _date_range(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {"startDate": str(value["startDate"]), "endDate": str(value["endDate"])}
    start, end = value
    return {"startDate": str(start), "endDate": str(end)}


class Ga4Analytics(ProviderAdapter):
    def __init__(
        self,
        base_url: str,
        credentials: CredentialSource,
        *,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        page_size: int = 10_000,
    ) -> None:
        if not 0 < page_size <= MAX_PAGE_ROWS:
            raise ValueError(f"page_size must be in 1..{MAX_PAGE_ROWS}")
        self._page_size = page_size
        self._http = ProviderHttp(
            PROVIDER, base_url, credentials=credentials, timeout_s=timeout_s, retry=retry,
            error_reader=google_error_reader,
        )

    async def run_report(
        self,
        property_id: str,
        *,
        date_ranges: Sequence[Any],
        dimensions: Sequence[str],
        metrics: Sequence[str],
        dimension_filter: dict[str, Any] | None = None,
        limit: int = 10_000,
        offset: int = 0,
        keep_empty_rows: bool = False,
    ) -> Ga4Report:
        """The report's rows from ``offset`` on (up to ``limit`` of them), however many pages that takes."""
        if not str(property_id).isdigit():
            raise ValueError(f"a GA4 property id is numeric, not {property_id!r}")
        if limit <= 0 or offset < 0:
            raise ValueError("limit must be > 0 and offset >= 0")
        base: dict[str, Any] = {
            "dateRanges": [_date_range(r) for r in date_ranges],
            "dimensions": [{"name": d} for d in dimensions],
            "metrics": [{"name": m} for m in metrics],
            "keepEmptyRows": keep_empty_rows,
        }
        if dimension_filter is not None:
            base["dimensionFilter"] = dimension_filter
        rows: list[Ga4Row] = []
        position = offset
        first: dict[str, Any] | None = None
        row_count = 0
        while True:
            want = min(self._page_size, limit - len(rows))
            reply = await self._page(property_id, {**base, "limit": want, "offset": position})
            first = first or reply
            row_count = int(reply.get("rowCount") or 0)
            page = [_row(r) for r in reply.get("rows") or []]
            rows.extend(page)
            position += len(page)
            # Stop at the end, at the caller's limit, or on an empty page (rows shrank meanwhile).
            if not page or position >= row_count or len(rows) >= limit:
                break
        metadata = first.get("metadata") or {}
        return Ga4Report(
            dimension_headers=tuple(h.get("name", "") for h in first.get("dimensionHeaders") or []),
            metric_headers=tuple(h.get("name", "") for h in first.get("metricHeaders") or []),
            rows=tuple(rows),
            row_count=row_count,
            currency_code=metadata.get("currencyCode"),
            time_zone=metadata.get("timeZone"),
            data_loss_from_other_row=bool(metadata.get("dataLossFromOtherRow", False)),
        )

    async def _page(self, property_id: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._http.request(
            "POST", f"/v1beta/properties/{property_id}:runReport", retry_safe=True, json=body
        )
        return json_object(PROVIDER, response)

    async def item_engagement(
        self,
        property_id: str,
        campaign_ids: Sequence[str],
        *,
        start_date: str = "90daysAgo",
        end_date: str = "today",
    ) -> dict[tuple[str, str], ItemEngagement]:
        """Sessions and key events per (campaign id, item id) for these campaigns.

        Eventually consistent (see the module doc): the newest activity may be missing. Items
        GA4 folded into its ``(other)`` row (past its cardinality limit) are not listed.
        """
        if not campaign_ids:
            return {}
        report = await self.run_report(
            property_id,
            date_ranges=[(start_date, end_date)],
            dimensions=[CAMPAIGN_DIMENSION, ITEM_DIMENSION],
            metrics=["sessions", "keyEvents"],
            dimension_filter={"filter": {
                "fieldName": CAMPAIGN_DIMENSION,
                "inListFilter": {"values": sorted(set(campaign_ids)), "caseSensitive": True},
            }},
            limit=MAX_PAGE_ROWS,
        )
        out: dict[tuple[str, str], ItemEngagement] = {}
        for record in report.records():
            key = (record[CAMPAIGN_DIMENSION], record[ITEM_DIMENSION])
            out[key] = ItemEngagement(key[0], key[1], int(record["sessions"]), int(record["keyEvents"]))
        return out


def _row(raw: dict[str, Any]) -> Ga4Row:
    return Ga4Row(
        dimensions=tuple(str(v.get("value", "")) for v in raw.get("dimensionValues") or []),
        metrics=tuple(str(v.get("value", "0")) for v in raw.get("metricValues") or []),
    )
