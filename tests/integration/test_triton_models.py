"""The real Triton server with the real models: generation, embeddings, stats, lifecycle."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import socket
from pathlib import Path

import pytest

from conftest import free_port, private_triton_server, settled_count

from agency.inference import Generation, InferenceUnavailable, TritonInference
from agency.models_prep import models_ready, prepare_models, read_manifest
from agency.settings import Settings, get_settings
from agency.triton_server import TritonServer, triton_is_ready

pytestmark = pytest.mark.integration

SYSTEM = "You are a marketing copywriter."
COMMON_WORDS = {"the", "a", "and", "to", "your", "our", "you", "with", "for", "of", "is", "in", "it"}


def process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b)) / (math.hypot(*a) * math.hypot(*b))


@pytest.fixture(scope="module")
def settings() -> Settings:
    settings = get_settings()
    prepare_models(settings, progress=lambda _: None)  # cached under .agency/models after the first run
    return settings


@pytest.fixture
def client(inference: TritonInference) -> TritonInference:
    """The session's client of the session's Triton server (see conftest)."""
    return inference


async def generate(client: TritonInference, prompt: str, **overrides: object) -> Generation:
    params: dict = {"system": SYSTEM, "max_tokens": 48, "temperature": 0.0} | overrides
    return await client.generate(prompt, **params)


async def test_server_reports_ready(triton: TritonServer, client: TritonInference) -> None:
    assert triton_is_ready(triton.http_port)
    assert await client.is_ready()


async def test_generation_returns_english_copy(client: TritonInference) -> None:
    result = await generate(client, "Write a one-sentence social post about our new reusable coffee cup.")

    words = re.findall(r"[a-z']+", result.text.lower())
    assert len(words) >= 3, result.text
    assert COMMON_WORDS & set(words), result.text
    assert "<|im" not in result.text
    assert result.prompt_tokens > 10
    assert 0 < result.completion_tokens <= 48
    assert result.model == "content_generator@1"


async def test_generation_respects_max_tokens(client: TritonInference) -> None:
    short = await generate(client, "Describe our summer sale on running shoes.", max_tokens=6)
    assert 0 < short.completion_tokens <= 6
    assert len(short.text.split()) <= 6


async def test_greedy_generation_is_reproducible(client: TritonInference) -> None:
    prompt = "Write an email subject line for a spring gardening webinar."
    first = await generate(client, prompt, temperature=0.0)
    second = await generate(client, prompt, temperature=0.0)
    assert first == second


async def test_concurrent_requests_all_succeed_and_are_counted(client: TritonInference) -> None:
    prompts = [
        "Write a tweet about a new vegan bakery.",
        "Write a headline for a cybersecurity training course.",
        "Write a short ad for noise-cancelling headphones.",
        "Write a slogan for a neighbourhood bike repair shop.",
    ]
    before = await client.inference_count("content_generator")

    results = await asyncio.gather(*(generate(client, p, max_tokens=32) for p in prompts))

    assert all(r.text.strip() and 0 < r.completion_tokens <= 32 for r in results)
    assert len({r.text for r in results}) == len(prompts)  # each caller got its own answer
    assert await settled_count(client, "content_generator", before + len(prompts)) == before + len(prompts)


async def test_bad_generation_input_raises_value_error(client: TritonInference) -> None:
    with pytest.raises(ValueError, match="MAX_TOKENS"):
        await generate(client, "Write a slogan.", max_tokens=0)
    with pytest.raises(ValueError, match="PROMPT"):
        await generate(client, "   ")
    with pytest.raises(ValueError, match="TEMPERATURE"):
        await generate(client, "Write a slogan.", temperature=-1.0)


async def test_embeddings_are_unit_vectors_that_capture_meaning(client: TritonInference) -> None:
    texts = [
        "Our reusable cup keeps your coffee hot all morning.",
        "This refillable mug keeps coffee warm for hours.",
        "Quarterly tax filings are due at the end of the month.",
    ]
    vectors = await client.embed(texts)

    assert len(vectors) == 3
    for vector in vectors:
        assert len(vector) == 384
        assert math.isclose(math.hypot(*vector), 1.0, abs_tol=1e-3)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2


async def test_embed_splits_large_inputs_and_keeps_order(client: TritonInference) -> None:
    texts = [f"Offer number {i}: {i}% off selected items." for i in range(70)]  # > one 64-row request
    before = await client.inference_count("embedder")

    vectors = await client.embed(texts)
    single = await client.embed([texts[65]])

    assert len(vectors) == 70
    assert cosine(vectors[65], single[0]) > 0.999
    assert await client.embed([]) == []
    assert await settled_count(client, "embedder", before + 3) == before + 3  # 64 + 6 rows, then 1


def test_prepare_models_again_does_no_work(settings: Settings) -> None:
    manifest_before = read_manifest(settings.models_dir)
    weights = settings.models_dir / "content_generator" / "model.bin"
    mtime_before = weights.stat().st_mtime_ns
    messages: list[str] = []

    returned = prepare_models(settings, progress=messages.append)

    assert models_ready(settings)
    assert returned == manifest_before == read_manifest(settings.models_dir)
    assert weights.stat().st_mtime_ns == mtime_before
    assert not any("convert" in m or "loading" in m for m in messages), messages
    assert manifest_before["content_generator"]["quantization"] == "float32"  # INT8 is chosen at load
    assert json.loads((settings.models_dir / "manifest.json").read_text())["embedder"]["dimensions"] == 384


def test_start_without_prepared_models_says_how_to_fix(tmp_path: Path) -> None:
    server = TritonServer(
        Settings(data_dir=tmp_path),
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
        log_path=tmp_path / "triton.log",
    )
    with pytest.raises(RuntimeError, match="agency models prepare"):
        server.start()
    assert not server.is_running()


def test_startup_failure_names_the_log_file(settings: Settings, tmp_path: Path) -> None:
    log_path = tmp_path / "busy.log"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = TritonServer(
            settings.model_copy(update={"triton_home_dir": tmp_path / "home"}),
            http_port=busy.getsockname()[1],
            grpc_port=free_port(),
            metrics_port=free_port(),
            log_path=log_path,
        )
        try:
            with pytest.raises(RuntimeError, match=re.escape(str(log_path))):
                server.start(timeout_s=180)
        finally:
            server.stop()
    assert not server.is_running()


async def test_stopped_server_raises_unavailable(settings: Settings, tmp_path: Path) -> None:
    server = private_triton_server(tmp_path)
    server.start()
    client = TritonInference(server.grpc_url, timeout_s=10)
    try:
        assert (await generate(client, "Write a slogan for a tea shop.", max_tokens=8)).text
        pgid = server.pid
        assert pgid is not None

        server.stop()

        assert not process_group_alive(pgid)  # backend stubs went down with the server
        assert not await client.is_ready()
        with pytest.raises(InferenceUnavailable):
            await generate(client, "Write a slogan for a tea shop.", max_tokens=8)
        with pytest.raises(InferenceUnavailable):
            await client.embed(["hello"])
    finally:
        server.stop()
        await client.close()
