"""GET /metrics: the API's OpenTelemetry metrics and Triton's, in one Prometheus scrape."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from agency.model_metrics import (
    MetricsUnavailable,
    cache_hit_ratios,
    parse_triton_metrics,
    scrape_triton_metrics,
)
from agency.security.rbac import Permission
from agency.telemetry import prometheus_text, record_cache_hit_ratio, record_triton_scrape
from api.auth.principal import requires
from api.errors import AUTHENTICATED_ERRORS

router = APIRouter(tags=["metrics"])

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@router.get(
    "/metrics",
    name="metrics.read",
    response_class=PlainTextResponse,
    dependencies=[requires(Permission.METRICS_READ)],
    responses=AUTHENTICATED_ERRORS,
    summary="Prometheus metrics: the API's (OpenTelemetry) and the model server's (Triton)",
)
async def read_metrics(request: Request) -> PlainTextResponse:
    settings = request.app.state.settings
    triton_text = ""
    try:
        triton_text = await scrape_triton_metrics(settings.triton_metrics_target)
        record_triton_scrape(ok=True)
    except MetricsUnavailable:
        record_triton_scrape(ok=False)
    for model, ratio in cache_hit_ratios(parse_triton_metrics(triton_text)).items():
        record_cache_hit_ratio(model, ratio)
    # Triton's own series keep their nv_ names, so existing Triton dashboards work unchanged.
    return PlainTextResponse(prometheus_text() + triton_text, media_type=PROMETHEUS_TEXT)
