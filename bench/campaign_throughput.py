"""N campaigns at once, end to end, on the real local stack (started by the product's supervisor).

Prints campaigns/min, the Triton generation rate measured in the same run on the same prompts,
and their ratio: how much of the raw model throughput the full pipeline (Temporal orchestration,
PostgreSQL writes, compliance, approvals over HTTP, publishing, metrics, report) keeps.

    .venv/bin/python bench/campaign_throughput.py --campaigns 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agency.agents.content import build_prompt  # noqa: E402
from agency.contracts import CalendarEntry, CampaignBrief, CampaignPlan, GenerationRequest  # noqa: E402
from agency.demo import demo_brief, sign_in_local_owner  # noqa: E402
from agency.inference import TritonInference  # noqa: E402
from agency.serialization import from_json  # noqa: E402
from agency.settings import Settings, get_settings  # noqa: E402
from agency.supervisor import Stack  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def run_campaign(base: str, tenant: str, settings: Settings, brief: dict, progress: dict) -> dict:
    token = await asyncio.to_thread(sign_in_local_owner, settings, base, tenant)
    async with httpx.AsyncClient(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as api:
        return await follow_campaign(api, brief, progress)


async def follow_campaign(api: httpx.AsyncClient, brief: dict, progress: dict) -> dict:
    campaign_id = (await api.post("/v1/campaigns", json=brief)).raise_for_status().json()["campaign_id"]
    approved = False
    while True:
        view = (await api.get(f"/v1/campaigns/{campaign_id}")).json()
        progress[campaign_id] = view["phase"]
        if view["phase"] == "awaiting_approval" and view["live"] and not approved:
            approved = True
            for item in view["items"]:
                if item["approval_state"] == "pending":
                    (await api.post(
                        f"/v1/campaigns/{campaign_id}/approvals",
                        json={"item_id": item["item_id"], "decision": "approve"},
                    )).raise_for_status()
        if view["status"] in ("completed", "failed", "cancelled") and not view["live"]:
            if view["status"] != "completed":
                raise RuntimeError(f"{campaign_id} ended {view['status']}")
            content = (await api.get(f"/v1/campaigns/{campaign_id}/content")).json()
            return {"campaign_id": campaign_id, "plan": view["plan"], "content": content}
        await asyncio.sleep(0.2)


async def show_progress(progress: dict, started: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        phases: dict[str, int] = {}
        for phase in progress.values():
            phases[phase] = phases.get(phase, 0) + 1
        line = ", ".join(f"{n} {p}" for p, n in sorted(phases.items()))
        print(f"  [{time.monotonic() - started:6.1f}s] {line}", flush=True)
        try:
            await asyncio.wait_for(stop.wait(), 5)
        except asyncio.TimeoutError:
            pass


async def raw_generation(settings: Settings, requests: list[GenerationRequest], concurrency: int) -> tuple[float, int]:
    """The baseline: the same prompts straight to Triton, `concurrency` in flight. Returns (seconds, tokens)."""
    client = TritonInference(settings.triton_grpc_target)
    semaphore = asyncio.Semaphore(concurrency)
    tokens = 0

    async def one(req: GenerationRequest) -> None:
        nonlocal tokens
        system, prompt = build_prompt(req)
        async with semaphore:
            result = await client.generate(
                prompt, system=system, max_tokens=req.max_tokens, temperature=req.temperature
            )
        tokens += result.completion_tokens

    try:
        started = time.perf_counter()
        await asyncio.gather(*(one(r) for r in requests))
        return time.perf_counter() - started, tokens
    finally:
        await client.close()


async def bench(settings: Settings, campaigns: int) -> None:
    base = f"http://127.0.0.1:{settings.api_port}"
    progress: dict[str, str] = {}
    brief = demo_brief(date(2027, 3, 1))
    print(f"running {campaigns} campaigns at once, one tenant each ...")
    stop = asyncio.Event()
    started = time.perf_counter()
    ticker = asyncio.create_task(show_progress(progress, time.monotonic(), stop))
    results = await asyncio.gather(
        *(run_campaign(base, f"bench-{i}", settings, brief, progress) for i in range(campaigns))
    )
    pipeline_s = time.perf_counter() - started
    stop.set()
    await ticker

    drafts = [item for r in results for item in r["content"]]
    generations = sum(item["version"] for item in drafts)
    tokens = sum(item["completion_tokens"] for item in drafts)

    # Baseline in the same process and stack: the same number of generations, same token budget.
    plan = from_json(CampaignPlan, results[0]["plan"])
    brief = CampaignBrief(
        **{k: v for k, v in brief.items() if k != "total_budget"}, tenant="bench-0", total_budget_cents=600000
    )
    requests = [
        GenerationRequest(
            campaign_id="baseline",
            entry=CalendarEntry(
                item_id=item["item_id"], channel=item["channel"], format=item["format"],
                publish_on=str(item["publish_on"]), angle=plan.key_messages[i % len(plan.key_messages)],
            ),
            brief=brief,
            plan=plan,
            max_tokens=settings.generation_max_tokens,
            temperature=settings.generation_temperature,
            attempt=i + 1,
        )
        for i, item in enumerate(drafts)
    ]
    concurrency = max(1, len(requests) // max(1, campaigns)) * campaigns
    print(f"baseline: {len(requests)} generations straight to Triton ({concurrency} in flight) ...")
    raw_s, raw_tokens = await raw_generation(settings, requests, concurrency)

    per_min = campaigns / pipeline_s * 60
    pipeline_gen_rate = generations / pipeline_s
    raw_gen_rate = len(requests) / raw_s
    print("\n=========== campaign throughput ===========")
    print(f"campaigns:                    {campaigns} ({len(drafts)} content items, {generations} generations)")
    print(f"pipeline wall time:           {pipeline_s:8.1f} s   -> {per_min:6.2f} campaigns/min")
    print(f"pipeline generation rate:     {pipeline_gen_rate:8.2f} generations/s ({tokens / pipeline_s:6.1f} tokens/s)")
    print(f"Triton baseline (same run):   {raw_gen_rate:8.2f} generations/s ({raw_tokens / raw_s:6.1f} tokens/s)")
    print(f"ratio pipeline/baseline:      {pipeline_gen_rate / raw_gen_rate:8.2f} (generations), "
          f"{(tokens / pipeline_s) / (raw_tokens / raw_s):.2f} (tokens)")
    print(f"orchestration overhead:       {pipeline_s - raw_s * generations / len(requests):8.1f} s of {pipeline_s:.1f} s "
          f"(metrics waits included: {settings.metrics_rounds} x {settings.metrics_interval_s:g} s)")


def on_local_stack(env: dict[str, str], run) -> None:
    """Start the product's local stack on free ports in a throwaway data folder (plus ``env``),
    ``asyncio.run(run(settings))``, and always stop the stack again."""
    prepared = get_settings().models_dir
    data_dir = Path(tempfile.mkdtemp(prefix="agency-bench-"))
    env = {"AGENCY_DATA_DIR": str(data_dir), "AGENCY_MODEL_CACHE_DIR": str(prepared), **env}
    for name in ("API", "SANDBOX", "TEMPORAL", "TEMPORAL_UI", "TRITON_HTTP", "TRITON_GRPC", "TRITON_METRICS"):
        env[f"AGENCY_{name}_PORT"] = str(free_port())
    os.environ.update(env)
    get_settings.cache_clear()
    settings = get_settings()
    stack = Stack(settings, progress=lambda msg: print(f"  stack: {msg}"))
    try:
        stack.start()
        asyncio.run(run(settings))
    finally:
        stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=4)
    args = parser.parse_args()
    env = {"AGENCY_METRICS_INTERVAL_S": "0.5", "AGENCY_METRICS_ROUNDS": "1", "AGENCY_GENERATION_MAX_TOKENS": "96"}
    on_local_stack(env, lambda settings: bench(settings, args.campaigns))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # the SDK's core threads can hold the process open (sdk-python #300)
