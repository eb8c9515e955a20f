"""Live draft previews: the decoupled generator in Triton, the streaming client, and the SSE
endpoint the approval UI reads, on the real stack (Temporal, PostgreSQL, Triton)."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from api_flow import in_phase, start_campaign, wait_for
from conftest import api_client, free_port, running_workers, settings_env, start_api, wait_healthy

pytestmark = pytest.mark.integration

SYSTEM = "You are a marketing copywriter."
PROMPT = "Write one social media post of at most 40 words about waterproof hiking boots for weekend hikers."


def stream_path(campaign_id: str, item_id: str) -> str:
    return f"/v1/campaigns/{campaign_id}/items/{item_id}/draft/stream"


async def read_events(response: httpx.Response) -> list[tuple[str, dict, float]]:
    """(event, data, monotonic arrival time) per server-sent event, as the lines arrive."""
    events: list[tuple[str, dict, float]] = []
    name, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data += line.split(":", 1)[1].strip()
        elif not line and data:
            events.append((name, json.loads(data), time.monotonic()))
            name, data = "message", ""
    return events


def looks_like_english(text: str) -> bool:
    words = re.findall(r"[A-Za-z]{2,}", text)
    ascii_share = sum(ch.isascii() for ch in text) / max(1, len(text))
    return len(words) >= 5 and ascii_share > 0.9


async def test_greedy_stream_joins_to_the_text_generate_returns(inference):
    """Both models decode with the same parameters, and the stream's last response carries the
    rest of exactly the stripped text, so greedy output must match token for token."""
    whole = await inference.generate(PROMPT, system=SYSTEM, max_tokens=48, temperature=0.0)
    deltas = [d async for d in inference.stream_generate(PROMPT, system=SYSTEM, max_tokens=48, temperature=0.0)]
    assert len(deltas) >= 3, deltas
    assert all(deltas)
    assert "".join(deltas) == whole.text

    chunks = [c async for c in inference.stream_chunks(PROMPT, system=SYSTEM, max_tokens=48, temperature=0.0)]
    assert chunks[-1].completion_tokens == whole.completion_tokens
    assert chunks[-1].model == "content_generator_stream@1"
    # Token counts only grow: each chunk reports the tokens generated so far.
    counts = [c.completion_tokens for c in chunks]
    assert counts == sorted(counts) and counts[0] < counts[-1]

    # Leaving a stream early closes it cleanly and the next stream is served as usual. (The bound
    # is loose: a sample may end by itself early, so this cannot prove the model stopped.)
    abandoned = inference.stream_generate(PROMPT, system=SYSTEM, max_tokens=400, temperature=0.7, seed=5)
    assert await anext(abandoned)
    await abandoned.aclose()
    started = time.monotonic()
    short = [d async for d in inference.stream_generate(PROMPT, system=SYSTEM, max_tokens=6, temperature=0.0)]
    assert short and time.monotonic() - started < 15


async def test_sse_endpoint_streams_an_items_draft_incrementally(make_settings, temporal_env, tmp_path):
    settings = make_settings()
    async with running_workers(temporal_env.client, settings), api_client(settings) as api:
        campaign_id = await start_campaign(api)
        await wait_for(api, campaign_id, in_phase("awaiting_approval"))
        content = (await api.get(f"/v1/campaigns/{campaign_id}/content")).json()
        item = next(i for i in content if i["channel"] == "social")
        path = stream_path(campaign_id, item["item_id"])

        # Validation and tenancy are answered before anything is generated (in-process is enough).
        bad = await api.post(path, json={"temperature": 5, "max_tokens": 0})
        assert bad.status_code == 422, bad.text
        assert {tuple(f["loc"][-1:]) for f in bad.json()["error"]["fields"]} == {("temperature",), ("max_tokens",)}
        assert (await api.post(path, json={"top_k": 3})).status_code == 422
        assert (await api.get(path, params={"max_tokens": "many"})).status_code == 422
        missing = await api.get(stream_path(campaign_id, f"{campaign_id}:social:99"))
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        async with api_client(settings, tenant="globex-drafts") as other:
            foreign = await other.get(path)
            assert foreign.status_code == 404, foreign.text
            assert foreign.json()["error"]["code"] == "not_found"
            assert (await other.post(path, json={"temperature": 0})).status_code == 404
        # A model server that cannot be reached is a 503 with the API's error body, not a stream.
        async with api_client(make_settings(triton_url=f"127.0.0.1:{free_port()}")) as no_model:
            down = await no_model.get(path)
            assert down.status_code == 503, down.text
            assert down.json()["error"]["code"] == "triton_unavailable"
            assert "Retry-After" in down.headers

        # Incremental delivery needs a real HTTP server (the ASGI test transport buffers bodies).
        port = free_port()
        log = tmp_path / "api.log"
        proc = start_api(settings_env(settings), port, log)
        try:
            wait_healthy(f"http://127.0.0.1:{port}", proc, log)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers={"Authorization": api.headers["Authorization"]}, timeout=120
            ) as http:
                opened = time.monotonic()
                async with http.stream("GET", path) as response:
                    assert response.status_code == 200
                    assert response.headers["content-type"].startswith("text/event-stream")
                    events = await read_events(response)

                async with http.stream("POST", path, json={"temperature": 0, "max_tokens": 40, "seed": 7}) as response:
                    assert response.status_code == 200
                    greedy_events = await read_events(response)
        finally:
            proc.terminate()
            proc.wait(15)

    names = [name for name, _, _ in events]
    assert names[-1] == "done" and "error" not in names, events
    deltas = [(data["text"], at) for name, data, at in events if name == "delta"]
    assert len(deltas) >= 3, events
    done = events[-1][1]
    done_at = events[-1][2]
    first_at = deltas[0][1]
    # Streamed, not buffered: the first delta came well before the generation finished.
    assert done_at - first_at > 0.3, (first_at - opened, done_at - opened)
    assert len({round(at, 2) for _, at in deltas}) >= 3  # arrivals spread over time
    text = "".join(t for t, _ in deltas)
    assert text.strip() and looks_like_english(text), text
    assert done["completion_tokens"] > 0
    assert done["model"] == "content_generator_stream@1"

    # The POST body's parameters were used: greedy, at most 40 tokens.
    assert [name for name, _, _ in greedy_events][-1] == "done"
    assert 0 < greedy_events[-1][1]["completion_tokens"] <= 40
    assert "".join(d["text"] for name, d, _ in greedy_events if name == "delta").strip()
