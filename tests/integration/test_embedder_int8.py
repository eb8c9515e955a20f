"""The INT8 ONNX embedder (``embedder_int8``) against the fp32 embedder, both served by Triton.

INT8 is only acceptable where it agrees with fp32: every vector's cosine to its fp32
counterpart must be at least 0.99 (issue 4), over short, long, non-English and emoji texts.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from agency.inference import TritonInference
from agency.models_prep import EMBEDDER_INT8_SHA256, EMBEDDING_DIM, read_manifest
from agency.settings import get_settings

pytestmark = pytest.mark.integration

MIN_COSINE = 0.99

TEXTS = [
    "Buy now!",
    "Limited edition.",
    "🎉 Big news! 🎉",
    "Spring sale: 20% off all sneakers this weekend only.",
    "Free shipping on orders over $50.",
    "Refer a friend and you both get $15 credit.",
    "#MondayMotivation: small steps lead to big results. What's your goal this week?",
    "Your cart misses you. Complete your order and get 10% off with code COMEBACK.",
    "Nouvelle collection printemps : découvrez nos robes légères et colorées.",
    "Oferta especial: dos por uno en todas las pizzas los martes.",
    "Our B2B analytics dashboard turns raw data into decisions your board will understand.",
    "Pet parents love our grain-free dog food: vet approved and made with real chicken.",
    "Quarterly report: engagement up 35%, cost per acquisition down 12% across paid social.",
    "Hiring! We're looking for a senior content strategist to join our remote team.",
    "Privacy first: we never sell your data.",
    "Cloud hosting with 99.99% uptime, automatic backups and human support when you need it.",
    "Discover how a family bakery in Lyon tripled online orders after switching to our platform, "
    "with step-by-step notes on their email campaigns, social posts and loyalty program.",
    "The brief: launch a loyalty programme for a regional grocery chain targeting young families, "
    "with a budget of 50k, across email, Instagram and in-store signage, over three months.",
    "Write a LinkedIn post announcing our partnership with a leading logistics provider, "
    "professional tone, under 700 characters, with a call to action to read the case study.",
    # Longer than the 256-token limit: both models must truncate the same way.
    " ".join(["Sustainable fashion that doesn't compromise on style: organic cotton, fair wages."] * 30),
]


def unit_rows(vectors: list[list[float]]) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float64)
    assert array.shape == (len(TEXTS), EMBEDDING_DIM)
    np.testing.assert_allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-4)
    return array


def test_manifest_pins_the_measured_int8_file() -> None:
    manifest = read_manifest(get_settings().models_dir)
    assert manifest is not None
    entry = manifest["embedder_int8"]
    assert entry["sha256"] == EMBEDDER_INT8_SHA256
    assert entry["format"] == "onnx" and entry["dimensions"] == EMBEDDING_DIM


async def test_int8_vectors_agree_with_fp32(inference: TritonInference) -> None:
    fp32 = unit_rows(await inference.embed(TEXTS))
    int8 = unit_rows(await inference.embed(TEXTS, model="embedder_int8"))

    cosines = (fp32 * int8).sum(axis=1)
    worst = int(cosines.argmin())
    assert cosines.min() >= MIN_COSINE, f"cosine {cosines.min():.4f} for {TEXTS[worst][:60]!r}"
    # Identical vectors would mean embedder_int8 is not running the INT8 weights at all.
    assert cosines.min() < 0.9999, cosines.min()


async def test_int8_vectors_do_not_depend_on_batching(inference: TritonInference) -> None:
    """Concurrent single-text requests (dynamic batching pads them together) give the same vectors."""
    batched = unit_rows(await inference.embed(TEXTS, model="embedder_int8"))
    singles = await asyncio.gather(*(inference.embed([text], model="embedder_int8") for text in TEXTS))
    one_by_one = unit_rows([vectors[0] for vectors in singles])
    np.testing.assert_allclose(one_by_one, batched, atol=1e-4)
