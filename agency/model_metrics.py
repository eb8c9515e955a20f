"""Triton's Prometheus metrics, scraped and summarised per model version.

Triton exports counters (requests, inferences, executions, cumulative queue and compute
microseconds, response-cache hits and misses). The API re-exports the raw text next to its
own OpenTelemetry metrics, and ``agency models status`` shows the per-model summary below.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

# Triton metric -> ModelMetrics field.
_FIELDS = {
    "nv_inference_request_success": "success",
    "nv_inference_request_failure": "failure",
    "nv_inference_count": "inferences",
    "nv_inference_exec_count": "executions",
    "nv_inference_queue_duration_us": "queue_us",
    "nv_inference_compute_infer_duration_us": "compute_us",
    "nv_inference_request_duration_us": "request_us",
    "nv_cache_num_hits_per_model": "cache_hits",
    "nv_cache_num_misses_per_model": "cache_misses",
}


class MetricsUnavailable(RuntimeError):
    """Triton's metrics endpoint could not be read."""


@dataclass
class ModelMetrics:
    model: str
    version: str
    success: float = 0
    failure: float = 0
    inferences: float = 0  # computed by the model (cache hits excluded)
    executions: float = 0  # model executions (a dynamic batch is one)
    queue_us: float = 0
    compute_us: float = 0
    request_us: float = 0
    cache_hits: float = 0
    cache_misses: float = 0

    @property
    def cache_hit_ratio(self) -> float | None:
        lookups = self.cache_hits + self.cache_misses
        return self.cache_hits / lookups if lookups else None

    @property
    def mean_queue_ms(self) -> float | None:
        return self.queue_us / self.success / 1000 if self.success else None

    @property
    def mean_compute_ms(self) -> float | None:
        # Compute time is spent on executed requests only; cache hits skip it.
        computed = self.success - self.cache_hits
        return self.compute_us / computed / 1000 if computed > 0 else None

    @property
    def mean_batch_size(self) -> float | None:
        return self.inferences / self.executions if self.executions else None


def parse_triton_metrics(text: str) -> dict[tuple[str, str], ModelMetrics]:
    """Per (model, version) counters from Triton's Prometheus text."""
    models: dict[tuple[str, str], ModelMetrics] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            field = _FIELDS.get(sample.name) or _FIELDS.get(sample.name.removesuffix("_total"))
            model = sample.labels.get("model")
            if field is None or model is None:
                continue
            version = sample.labels.get("version", "")
            entry = models.setdefault((model, version), ModelMetrics(model=model, version=version))
            setattr(entry, field, getattr(entry, field) + sample.value)
    return models


def cache_hit_ratios(metrics: dict[tuple[str, str], ModelMetrics]) -> dict[str, float]:
    """Response-cache hits / lookups per model, over all its versions (models with lookups only)."""
    hits: dict[str, float] = {}
    lookups: dict[str, float] = {}
    for m in metrics.values():
        hits[m.model] = hits.get(m.model, 0) + m.cache_hits
        lookups[m.model] = lookups.get(m.model, 0) + m.cache_hits + m.cache_misses
    return {model: hits[model] / total for model, total in lookups.items() if total}


async def scrape_triton_metrics(url: str, *, timeout_s: float = 3.0) -> str:
    """Raw Prometheus text from Triton's metrics endpoint."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(url)
            response.raise_for_status()
    except httpx.HTTPError as exc:
        raise MetricsUnavailable(f"cannot read Triton metrics at {url}: {exc}") from exc
    return response.text
