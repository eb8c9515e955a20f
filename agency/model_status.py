"""What `agency models status` shows: every model version Triton has, its state, the rollout
state of the rendered repository, and per-version serving metrics."""

from __future__ import annotations

from dataclasses import dataclass

from agency.inference import InferenceUnavailable, TritonInference
from agency.model_metrics import MetricsUnavailable, ModelMetrics, parse_triton_metrics, scrape_triton_metrics
from agency.settings import Settings
from agency.triton_repository import CANARY_SUFFIX, TritonRepository


@dataclass
class ModelVersionStatus:
    model: str
    version: str
    state: str  # READY, UNAVAILABLE, LOADING...
    role: str  # serving, candidate, or "" (not part of a rollout)
    reason: str
    metrics: ModelMetrics | None


@dataclass
class ModelServerStatus:
    reachable: bool
    detail: str  # why not, when unreachable; "" otherwise
    versions: list[ModelVersionStatus]
    metrics_available: bool


def _role(repository: TritonRepository, model: str, version: str) -> str:
    base = model.removesuffix(CANARY_SUFFIX)
    try:
        state = repository.state(base)
    except Exception:  # noqa: BLE001 - a model without a local template (external repository)
        return ""
    if model.endswith(CANARY_SUFFIX):
        return "candidate" if str(state.candidate) == version else ""
    return "serving" if str(state.serving) == version else ""


async def model_server_status(settings: Settings) -> ModelServerStatus:
    repository = TritonRepository.from_settings(settings)
    async with TritonInference(settings.triton_grpc_target, timeout_s=5.0) as client:
        try:
            index = await client.repository_index()
        except InferenceUnavailable as err:
            return ModelServerStatus(reachable=False, detail=str(err), versions=[], metrics_available=False)
    try:
        metrics = parse_triton_metrics(await scrape_triton_metrics(settings.triton_metrics_target))
        metrics_available = True
    except MetricsUnavailable:
        metrics, metrics_available = {}, False
    versions = [
        ModelVersionStatus(
            model=entry["name"],
            version=str(entry.get("version", "")),
            state=entry.get("state", "UNKNOWN"),
            role=_role(repository, entry["name"], str(entry.get("version", ""))),
            reason=entry.get("reason", ""),
            metrics=metrics.get((entry["name"], str(entry.get("version", "")))),
        )
        for entry in index
    ]
    return ModelServerStatus(reachable=True, detail="", versions=versions, metrics_available=metrics_available)


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def render_status(status: ModelServerStatus) -> str:
    if not status.reachable:
        return f"model server DEGRADED: unreachable ({status.detail})"
    header = ("model", "ver", "state", "role", "requests", "computed", "avg batch", "queue ms", "compute ms", "cache hit")
    rows = [header]
    for v in sorted(status.versions, key=lambda v: (v.model, v.version)):
        m = v.metrics
        rows.append(
            (
                v.model,
                v.version,
                v.state,
                v.role or "-",
                _fmt(m.success if m else None, "{:.0f}"),
                _fmt(m.inferences if m else None, "{:.0f}"),
                _fmt(m.mean_batch_size if m else None, "{:.2f}"),
                _fmt(m.mean_queue_ms if m else None, "{:.1f}"),
                _fmt(m.mean_compute_ms if m else None, "{:.1f}"),
                _fmt(m.cache_hit_ratio if m else None, "{:.0%}"),
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    not_ready = [v for v in status.versions if v.state != "READY" and v.role]
    summary = "model server ok" if not not_ready else "model server DEGRADED: " + ", ".join(
        f"{v.model} v{v.version} is {v.state}" + (f" ({v.reason})" if v.reason else "") for v in not_ready
    )
    if not status.metrics_available:
        summary += " (metrics endpoint unreachable)"
    return "\n".join([summary, *lines])
