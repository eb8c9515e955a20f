"""Serving features of the real Triton: response cache, per-tenant priority, metrics, status."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from conftest import api_client, settled_count

from agency.inference import TenantPriorities, TritonInference
from agency.model_metrics import parse_triton_metrics, scrape_triton_metrics
from agency.model_status import model_server_status, render_status
from agency.triton_server import TritonServer

pytestmark = pytest.mark.integration

SYSTEM = "You are a marketing copywriter."


async def test_identical_generation_is_answered_from_the_cache(inference: TritonInference) -> None:
    prompt = f"Write a tagline for a rain jacket (cache test {uuid.uuid4().hex[:6]})."
    params = dict(system=SYSTEM, max_tokens=24, temperature=0.8, seed=1234)

    before = await inference.inference_count("content_generator")
    first = await inference.generate(prompt, **params)
    computed = await settled_count(inference, "content_generator", before + 1)
    assert computed == before + 1
    hits_before, _ = await inference.cache_counts("content_generator")

    again = await inference.generate(prompt, **params)
    await asyncio.sleep(0.5)

    assert again.text == first.text and again.model == first.model
    assert await inference.inference_count("content_generator") == computed  # nothing computed
    hits_after, _ = await inference.cache_counts("content_generator")
    assert hits_after == hits_before + 1

    # Another seed is another sample: computed, not served from the cache.
    await inference.generate(prompt, **{**params, "seed": 99})
    assert await settled_count(inference, "content_generator", computed + 1) == computed + 1


async def test_a_flooding_tenant_does_not_starve_another(triton: TritonServer) -> None:
    """Tenant A sends 64 requests at once; B's single request, sent just after, is answered
    before half of A's flood is through (FIFO would put it behind all 64)."""
    client = TritonInference(triton.grpc_url, priorities=TenantPriorities(fair_share=2))
    finished: list[str] = []

    async def ask(tenant: str, number: int) -> None:
        await client.generate(
            f"Write a tagline for product {number} of {tenant} ({uuid.uuid4().hex[:6]}).",
            system=SYSTEM, max_tokens=24, temperature=0.0, tenant=tenant,
        )
        finished.append(tenant)

    try:
        flood = [asyncio.create_task(ask("tenant-a", n)) for n in range(64)]
        await asyncio.sleep(0.05)  # A's requests are queued first
        await ask("tenant-b", 0)
        a_done_before_b = finished.index("tenant-b")
        await asyncio.gather(*flood)
    finally:
        await client.close()
    # B jumps A's demoted requests: only batches already running or formed (two instances,
    # up to 8 each) and the rest of B's own batch can finish before it.
    assert a_done_before_b <= 32, finished


async def test_metrics_endpoint_exports_triton_and_app_metrics(make_settings, inference: TritonInference) -> None:
    prompt = f"Write a tagline for hiking socks ({uuid.uuid4().hex[:6]})."
    for _ in range(2):  # a miss, then a hit
        await inference.generate(prompt, system=SYSTEM, max_tokens=16, temperature=0.0, seed=5)

    settings = make_settings()
    async with api_client(settings, role="viewer") as api:
        response = await api.get("/metrics")
        assert response.status_code == 200, response.text
        text = response.text
        anonymous = await api.get("/metrics", headers={"Authorization": ""})
        assert anonymous.status_code == 401
    for series in (
        "nv_inference_count",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_cache_num_hits_per_model",
        "agency_http_requests_total",
        "agency_inference_cache_hit_ratio",
        "agency_triton_metrics_up",
    ):
        assert series in text, series
    ratio_line = next(
        line for line in text.splitlines()
        if line.startswith("agency_inference_cache_hit_ratio") and 'model="content_generator"' in line
    )
    assert 0 < float(ratio_line.rsplit(" ", 1)[1]) <= 1


async def test_models_status_reports_versions_roles_and_metrics(make_settings, triton: TritonServer) -> None:
    settings = make_settings()
    status = await model_server_status(settings)
    assert status.reachable and status.metrics_available
    generator = next(v for v in status.versions if v.model == "content_generator")
    assert (generator.version, generator.state, generator.role) == ("1", "READY", "serving")
    assert generator.metrics is not None and generator.metrics.success > 0
    text = render_status(status)
    assert text.startswith("model server ok")
    assert "content_generator" in text and "embedder" in text

    down = await model_server_status(make_settings(triton_url="127.0.0.1:9"))
    assert not down.reachable
    assert render_status(down).startswith("model server DEGRADED")


async def test_triton_metrics_parse_into_per_version_counters(triton: TritonServer) -> None:
    metrics = parse_triton_metrics(await scrape_triton_metrics(f"http://127.0.0.1:{triton.metrics_port}/metrics"))
    generator = metrics[("content_generator", "1")]
    assert generator.success >= generator.inferences >= generator.executions > 0
    assert generator.compute_us > 0 and generator.mean_compute_ms is not None
