"""Process-wide OpenTelemetry metrics, exported in Prometheus text format.

One MeterProvider per process (OpenTelemetry's global is set once), whatever number of apps a
process creates; the instruments below are shared. ``prometheus_text`` renders them.
"""

from __future__ import annotations

from functools import lru_cache

from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import REGISTRY, generate_latest

# Latest response-cache hit ratio per model, and whether the last Triton scrape worked.
_cache_hit_ratios: dict[str, float] = {}
_triton_scrape_ok: list[int] = []


def _observe_cache_hit_ratios(options: CallbackOptions) -> list[Observation]:
    return [Observation(ratio, {"model": model}) for model, ratio in sorted(_cache_hit_ratios.items())]


def _observe_triton_scrape(options: CallbackOptions) -> list[Observation]:
    return [Observation(_triton_scrape_ok[-1])] if _triton_scrape_ok else []


class AppMetrics:
    def __init__(self, meter: metrics.Meter) -> None:
        self.http_requests = meter.create_counter(
            "agency.http.requests", unit="1", description="API requests by route, method and status"
        )
        self.http_duration = meter.create_histogram(
            "agency.http.request.duration", unit="s", description="API request duration"
        )
        self.cache_hit_ratio = meter.create_observable_gauge(
            "agency.inference.cache_hit_ratio",
            callbacks=[_observe_cache_hit_ratios],
            unit="1",
            description="Triton response-cache hits / lookups per model (identical generation requests)",
        )
        self.triton_up = meter.create_observable_gauge(
            "agency.triton.metrics_up",
            callbacks=[_observe_triton_scrape],
            unit="1",
            description="1 if the last scrape of Triton's metrics worked, else 0",
        )


@lru_cache(maxsize=1)
def app_metrics() -> AppMetrics:
    provider = MeterProvider(
        metric_readers=[PrometheusMetricReader()], resource=Resource.create({"service.name": "agency-api"})
    )
    metrics.set_meter_provider(provider)
    return AppMetrics(provider.get_meter("agency"))


def record_cache_hit_ratio(model: str, ratio: float) -> None:
    _cache_hit_ratios[model] = ratio


def record_triton_scrape(*, ok: bool) -> None:
    _triton_scrape_ok[:] = [1 if ok else 0]


def prometheus_text() -> str:
    app_metrics()  # make sure the reader is registered
    return generate_latest(REGISTRY).decode("utf-8")
