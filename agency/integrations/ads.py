"""Google Ads API (REST v17) adapter: GAQL search, campaign metrics, total budgets, status.

Every call here is retry-safe: searches are reads, and mutations set ABSOLUTE values (a total
budget, a status), so applying one twice leaves the account as applying it once.

Errors arrive as ``{"error": {"code", "message", "status", "details": [GoogleAdsFailure]}}``;
the first ``errors[].errorCode`` (``{"queryError": "UNRECOGNIZED_FIELD"}``) becomes the
:class:`ProviderRejected` code ``"queryError.UNRECOGNIZED_FIELD"``. Quota errors (429 /
RESOURCE_EXHAUSTED) are :class:`ProviderUnavailable` with the wait from ``Retry-After`` or the
failure's ``quotaErrorDetails.retryDelay``. A total budget below what was already spent is
:class:`BudgetBelowSpend`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from agency.channels import parse_retry_after
from agency.integrations.errors import ProviderError, ProviderRejected, ProviderUnavailable
from agency.integrations.http import CredentialSource, ProviderAdapter, ProviderHttp, json_object
from agency.integrations.reliability import RetryPolicy

PROVIDER = "google-ads"
API_VERSION = "v17"
MICROS_PER_UNIT = 1_000_000
# What may go into a GAQL string literal unescaped (ids of posts promoted as campaigns, URNs included).
_ID = re.compile(r"^[A-Za-z0-9_:.-]{1,200}$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")
_BUDGET_TOO_SMALL = {"campaignBudgetError.TOTAL_AMOUNT_TOO_SMALL"}


class BudgetBelowSpend(ProviderRejected):
    """The new total budget is below the campaign's spend so far.

    ``spent_micros`` is the spend the provider checked against, when it reports it (the sandbox
    does; live Google Ads does not, so read ``metrics.cost_micros`` and retry above it).
    """

    def __init__(self, provider: str, status_code: int, code: str, message: str, body: Any, spent_micros: int | None):
        super().__init__(provider, status_code, code, message, body)
        self.spent_micros = spent_micros


def _failures(body: Any) -> list[dict[str, Any]]:
    """The GoogleAdsError entries of an error body (empty when it has none)."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return []
    errors: list[dict[str, Any]] = []
    for detail in body["error"].get("details") or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("GoogleAdsFailure"):
            errors.extend(e for e in detail.get("errors") or [] if isinstance(e, dict))
    return errors


def _error_code(error: dict[str, Any]) -> str:
    code = error.get("errorCode")
    if isinstance(code, dict) and code:
        category, value = next(iter(code.items()))
        return f"{category}.{value}"
    return ""


def google_error_reader(response: httpx.Response) -> tuple[str, str]:
    """(code, message) of a Google API error: the first Google Ads error code, else ``status``."""
    try:
        body = response.json()
    except ValueError:
        return (f"http_{response.status_code}", response.text[:300])
    failures = _failures(body)
    if failures:
        return (_error_code(failures[0]) or f"http_{response.status_code}", str(failures[0].get("message", ""))[:500])
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return (str(error.get("status") or f"http_{response.status_code}"), str(error.get("message", ""))[:500])
    return (f"http_{response.status_code}", str(body)[:300])


def _retry_delay(failures: list[dict[str, Any]]) -> float | None:
    for error in failures:
        details = error.get("details")
        quota = details.get("quotaErrorDetails") if isinstance(details, dict) else None
        match = _DURATION.match(str((quota or {}).get("retryDelay", "")))
        if match:
            return float(match.group(1))
    return None


def _classify(response: httpx.Response) -> ProviderError | None:
    """The Google Ads specifics the generic mapping cannot see in the status alone."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    failures = _failures(body)
    status = body.get("error", {}).get("status") if isinstance(body, dict) and isinstance(body.get("error"), dict) else None
    quota = any(_error_code(e).startswith("quotaError.") for e in failures)
    if response.status_code == 429 or status == "RESOURCE_EXHAUSTED" or quota:
        code, message = google_error_reader(response)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return ProviderUnavailable(
            PROVIDER, f"HTTP {response.status_code} {code}: {message}", status_code=response.status_code,
            retry_after_s=retry_after if retry_after is not None else _retry_delay(failures),
        )
    for error in failures:
        if _error_code(error) in _BUDGET_TOO_SMALL:
            details = error.get("details") if isinstance(error.get("details"), dict) else {}
            spent = details.get("spentAmountMicros")
            return BudgetBelowSpend(
                PROVIDER, response.status_code, _error_code(error), str(error.get("message", "")), body,
                int(spent) if spent is not None and str(spent).lstrip("-").isdigit() else None,
            )
    return None


@dataclass(frozen=True)
class SearchPage:
    results: list[dict[str, Any]]
    next_page_token: str | None


@dataclass(frozen=True)
class CampaignMetrics:
    campaign_id: str
    resource_name: str
    status: str
    budget_resource_name: str
    total_budget_micros: int
    impressions: int
    clicks: int
    conversions: float
    cost_micros: int


def normalize_customer_id(value: str) -> str:
    """``123-456-7890`` → ``1234567890`` (the API wants digits only)."""
    digits = str(value).replace("-", "").strip()
    if not digits.isdigit():
        raise ValueError(f"a Google Ads customer id is 10 digits (dashes allowed), not {value!r}")
    return digits


def _gaql_literal(value: str) -> str:
    value = str(value)
    if value.isdigit():
        return value
    if not _ID.match(value):
        # Never splice arbitrary text into a query.
        raise ValueError(f"not a valid Google Ads id: {value!r}")
    return f"'{value}'"


class GoogleAdsClient(ProviderAdapter):
    """One customer account (optionally through a manager, ``login_customer_id``)."""

    def __init__(
        self,
        base_url: str,
        credentials: CredentialSource,
        developer_token: str | None,
        customer_id: str,
        login_customer_id: str | None = None,
        *,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.customer_id = normalize_customer_id(customer_id)
        headers = {}
        # A credential source may carry the developer token itself (a tenant's stored secret).
        if developer_token:
            headers["developer-token"] = developer_token
        if login_customer_id:
            headers["login-customer-id"] = normalize_customer_id(login_customer_id)
        self._http = ProviderHttp(
            PROVIDER, base_url, credentials=credentials, timeout_s=timeout_s, retry=retry,
            error_reader=google_error_reader, classify=_classify, headers=headers,
        )

    def _path(self, method: str) -> str:
        return f"/{API_VERSION}/customers/{self.customer_id}/{method}"

    async def search(self, gaql: str, page_token: str | None = None) -> SearchPage:
        """One page of a GAQL query's rows."""
        body: dict[str, Any] = {"query": gaql}
        if page_token:
            body["pageToken"] = page_token
        response = await self._http.request("POST", self._path("googleAds:search"), retry_safe=True, json=body)
        reply = json_object(PROVIDER, response)
        return SearchPage(list(reply.get("results") or []), reply.get("nextPageToken") or None)

    async def search_all(self, gaql: str) -> AsyncIterator[dict[str, Any]]:
        """Every row of a GAQL query, following ``nextPageToken``."""
        token: str | None = None
        while True:
            page = await self.search(gaql, token)
            for row in page.results:
                yield row
            if not page.next_page_token:
                return
            token = page.next_page_token

    async def campaign_metrics(self, campaign_ids: Iterable[str]) -> dict[str, CampaignMetrics]:
        """Cumulative metrics and the total budget of each campaign, by campaign id."""
        ids = sorted({str(i) for i in campaign_ids})
        if not ids:
            return {}
        gaql = (
            "SELECT campaign.id, campaign.status, campaign.campaign_budget, campaign_budget.total_amount_micros,"
            " metrics.impressions, metrics.clicks, metrics.conversions, metrics.cost_micros"
            f" FROM campaign WHERE campaign.id IN ({', '.join(_gaql_literal(i) for i in ids)})"
        )
        found: dict[str, CampaignMetrics] = {}
        async for row in self.search_all(gaql):
            campaign = row.get("campaign") or {}
            budget = row.get("campaignBudget") or {}
            metrics = row.get("metrics") or {}
            campaign_id = str(campaign.get("id", ""))
            found[campaign_id] = CampaignMetrics(
                campaign_id=campaign_id,
                resource_name=str(campaign.get("resourceName", "")),
                status=str(campaign.get("status", "UNSPECIFIED")),
                budget_resource_name=str(campaign.get("campaignBudget") or budget.get("resourceName", "")),
                # proto3 JSON: int64 as strings; absent zero values are omitted.
                total_budget_micros=int(budget.get("totalAmountMicros", 0)),
                impressions=int(metrics.get("impressions", 0)),
                clicks=int(metrics.get("clicks", 0)),
                conversions=float(metrics.get("conversions", 0.0)),
                cost_micros=int(metrics.get("costMicros", 0)),
            )
        return found

    async def set_total_budget(self, budget_resource_name: str, amount_micros: int) -> str:
        """Set a campaign budget's total (absolute, so retry-safe); its resource name."""
        body = {"operations": [{
            "update": {"resourceName": budget_resource_name, "totalAmountMicros": str(int(amount_micros))},
            "updateMask": "totalAmountMicros",
        }]}
        return await self._mutate("campaignBudgets:mutate", body)

    async def set_campaign_status(self, campaign_resource_name: str, status: str) -> str:
        """ENABLED or PAUSED (absolute, so retry-safe); the campaign's resource name."""
        if status not in ("ENABLED", "PAUSED"):
            raise ValueError(f"status must be ENABLED or PAUSED, not {status!r}")
        body = {"operations": [{
            "update": {"resourceName": campaign_resource_name, "status": status}, "updateMask": "status",
        }]}
        return await self._mutate("campaigns:mutate", body)

    async def _mutate(self, method: str, body: dict[str, Any]) -> str:
        response = await self._http.request("POST", self._path(method), retry_safe=True, json=body)
        results = json_object(PROVIDER, response).get("results") or [{}]
        return str(results[0].get("resourceName", ""))

    def campaign_resource_name(self, campaign_id: str) -> str:
        return f"customers/{self.customer_id}/campaigns/{campaign_id}"
