"""Async client for the models served by Triton (``content_generator``, ``embedder``) over gRPC.

Each call is one Triton request; Triton's dynamic batcher merges concurrent callers into
model batches, so callers just run requests concurrently. Errors are mapped to what callers
act on: ``InferenceUnavailable`` (retry later / HTTP 503) and ``ValueError`` (bad input).

Requests carry a Triton priority level per tenant (see ``TenantPriorities``), and the same
client also steers the server for model rollouts (load/unload in explicit model control).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc
import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

GENERATOR_MODEL = "content_generator"
GENERATOR_STREAM_MODEL = "content_generator_stream"  # decoupled twin: text as deltas
EMBEDDER_MODEL = "embedder"
EMBED_CHUNK = 64  # the embedder's max_batch_size

# gRPC codes that mean "the server or model can't serve right now": worth retrying.
_UNAVAILABLE_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "CANCELLED", "ABORTED"}
_BAD_INPUT_CODES = {"INVALID_ARGUMENT", "OUT_OF_RANGE"}


# Triton priority levels declared by the models' dynamic_batching (1 is served first).
PRIORITY_HIGH, PRIORITY_STANDARD, PRIORITY_DEMOTED = 1, 2, 3


@dataclass
class TenantPriorities:
    """Maps a tenant to a Triton priority level for each request.

    A tenant's configured tier (``levels``; standard by default) applies to its first
    ``fair_share`` requests in flight from this process; requests beyond that are demoted to
    the lowest level, so a tenant flooding the model queues behind everyone else's work
    instead of in front of it.
    """

    levels: dict[str, int] = field(default_factory=dict)
    fair_share: int = 4
    _in_flight: Counter = field(default_factory=Counter, repr=False)

    @contextmanager
    def admit(self, tenant: str | None) -> Iterator[int]:
        """The priority level for one request of ``tenant``, counted in flight while open."""
        if tenant is None:
            yield PRIORITY_STANDARD
            return
        level = self.levels.get(tenant, PRIORITY_STANDARD)
        if self._in_flight[tenant] >= self.fair_share:
            level = PRIORITY_DEMOTED
        self._in_flight[tenant] += 1
        try:
            yield level
        finally:
            self._in_flight[tenant] -= 1
            if self._in_flight[tenant] <= 0:
                del self._in_flight[tenant]


class InferenceError(RuntimeError):
    """Triton answered but the model failed (an internal error, not the caller's input)."""


class InferenceUnavailable(InferenceError):
    """Triton cannot be reached, is not ready, or timed out; retrying later may succeed."""


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    model: str  # "name@version" of the model that produced the text


@dataclass
class GenerationChunk(Generation):
    """One response of a streamed generation: ``text`` is what was generated since the
    previous chunk, ``completion_tokens`` the count so far (the total, in the last chunk)."""


def _generation_from(result, kind: type[Generation] = Generation) -> Generation:
    """The generator's output tensors (TEXT, PROMPT_TOKENS, COMPLETION_TOKENS) of one response."""
    response = result.get_response()
    text = result.as_numpy("TEXT").reshape(-1)[0]
    return kind(
        text=text.decode("utf-8") if isinstance(text, bytes) else str(text),
        prompt_tokens=int(result.as_numpy("PROMPT_TOKENS").reshape(-1)[0]),
        completion_tokens=int(result.as_numpy("COMPLETION_TOKENS").reshape(-1)[0]),
        model=f"{response.model_name}@{response.model_version}",
    )


def _status_name(exc: Exception) -> str:
    if isinstance(exc, InferenceServerException):
        return str(exc.status() or "").rsplit(".", 1)[-1]
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return exc.code().name
    return ""


def _translate(exc: Exception, model_name: str) -> Exception:
    """Map a tritonclient/gRPC error to InferenceUnavailable, ValueError or InferenceError."""
    status = _status_name(exc)
    message = exc.message() if isinstance(exc, InferenceServerException) else str(exc)
    if status in _UNAVAILABLE_CODES or "not ready" in (message or "").lower():
        return InferenceUnavailable(f"{model_name}: Triton unavailable ({status or 'error'}): {message}")
    if status in _BAD_INPUT_CODES:
        return ValueError(f"{model_name}: {message}")
    return InferenceError(f"{model_name}: {status or 'error'}: {message}")


def _string_input(name: str, values: list[str]) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, [len(values), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[v.encode("utf-8")] for v in values], dtype=np.object_))
    return tensor


def _generation_inputs(
    prompt: str, system: str, max_tokens: int, temperature: float, seed: int
) -> list[grpcclient.InferInput]:
    return [
        _string_input("PROMPT", [prompt]),
        _string_input("SYSTEM", [system]),
        _scalar_input("MAX_TOKENS", int(max_tokens), "INT32", np.int32),
        _scalar_input("TEMPERATURE", float(temperature), "FP32", np.float32),
        _scalar_input("SEED", int(seed) % (2**63), "INT64", np.int64),
    ]


def _scalar_input(name: str, value: float | int, datatype: str, dtype: type) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, [1, 1], datatype)
    tensor.set_data_from_numpy(np.array([[value]], dtype=dtype))
    return tensor


class TritonInference:
    """Async client of one Triton server; create once per process and ``close()`` at the end."""

    def __init__(
        self, grpc_url: str, *, timeout_s: float = 120.0, priorities: TenantPriorities | None = None
    ) -> None:
        self.grpc_url = grpc_url
        self.timeout_s = timeout_s
        self.priorities = priorities or TenantPriorities()
        # Created on first use, inside the running event loop (grpc.aio binds to it).
        self._client: grpcclient.InferenceServerClient | None = None

    def _grpc(self) -> grpcclient.InferenceServerClient:
        if self._client is None:
            self._client = grpcclient.InferenceServerClient(self.grpc_url)
        return self._client

    async def generate(
        self,
        prompt: str,
        *,
        system: str,
        max_tokens: int,
        temperature: float,
        seed: int = 0,
        tenant: str | None = None,
        model: str = GENERATOR_MODEL,
    ) -> Generation:
        """Generate copy for one prompt (ChatML with ``system``; temperature 0 is greedy and reproducible).

        The same (prompt, parameters, seed) on the same model version is answered from
        Triton's response cache.
        """
        inputs = _generation_inputs(prompt, system, max_tokens, temperature, seed)
        with self.priorities.admit(tenant) as priority:
            try:
                result = await self._grpc().infer(
                    model, inputs, priority=priority, client_timeout=self.timeout_s
                )
            except (InferenceServerException, grpc.RpcError) as exc:
                raise _translate(exc, model) from exc
        return _generation_from(result)

    async def embed(self, texts: list[str], *, model: str = EMBEDDER_MODEL) -> list[list[float]]:
        """384-d unit vectors, one per text, in order."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBED_CHUNK):
            chunk = texts[start : start + EMBED_CHUNK]
            try:
                result = await self._grpc().infer(
                    model, [_string_input("TEXT", chunk)], client_timeout=self.timeout_s
                )
            except (InferenceServerException, grpc.RpcError) as exc:
                raise _translate(exc, model) from exc
            vectors.extend(result.as_numpy("EMBEDDING").astype(float).tolist())
        return vectors

    async def _request_counts(self, model_name: str) -> Counter:
        """Request counts since the server started (success, cache_hit, cache_miss...), summed
        over the model's versions, from one statistics call."""
        try:
            stats = await self._grpc().get_inference_statistics(
                model_name, as_json=True, client_timeout=self.timeout_s
            )
        except (InferenceServerException, grpc.RpcError) as exc:
            raise _translate(exc, model_name) from exc
        counts: Counter = Counter()
        for entry in stats.get("model_stats", []):
            for kind, stat in entry.get("inference_stats", {}).items():
                counts[kind] += int(stat.get("count", 0))
        return counts

    async def inference_count(self, model_name: str) -> int:
        """Requests the model computed since the server started (answered from the cache: excluded)."""
        counts = await self._request_counts(model_name)
        return counts["success"] - counts["cache_hit"]

    async def cache_counts(self, model_name: str) -> tuple[int, int]:
        """(hits, misses) of Triton's response cache for the model, over all its versions."""
        counts = await self._request_counts(model_name)
        return counts["cache_hit"], counts["cache_miss"]

    # ---- model control (explicit mode; used by the rollout activities) ------------------
    async def load_model(self, model_name: str) -> None:
        """(Re)load a model from the repository; Triton keeps serving the loaded versions until
        the new ones are ready, and keeps the old model if the load fails."""
        try:
            await self._grpc().load_model(model_name, client_timeout=max(self.timeout_s, 300.0))
        except (InferenceServerException, grpc.RpcError) as exc:
            raise _translate(exc, model_name) from exc

    async def unload_model(self, model_name: str) -> None:
        try:
            await self._grpc().unload_model(model_name, client_timeout=self.timeout_s)
        except (InferenceServerException, grpc.RpcError) as exc:
            raise _translate(exc, model_name) from exc

    async def repository_index(self) -> list[dict]:
        """Every model and version Triton knows: name, version, state (READY, UNAVAILABLE...)."""
        try:
            index = await self._grpc().get_model_repository_index(as_json=True, client_timeout=self.timeout_s)
        except (InferenceServerException, grpc.RpcError) as exc:
            raise _translate(exc, "repository") from exc
        return list(index.get("models", []))

    async def is_ready(self) -> bool:
        """True when the server and both models are ready; False on any error."""
        try:
            client = self._grpc()
            return bool(
                await client.is_server_ready(client_timeout=5.0)
                and await client.is_model_ready(GENERATOR_MODEL, client_timeout=5.0)
                and await client.is_model_ready(EMBEDDER_MODEL, client_timeout=5.0)
            )
        except (InferenceServerException, grpc.RpcError, OSError):
            return False

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def __aenter__(self) -> TritonInference:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ---- streaming (the decoupled generator) ---------------------------------------------
    async def stream_chunks(
        self,
        prompt: str,
        *,
        system: str,
        max_tokens: int,
        temperature: float,
        seed: int = 0,
        tenant: str | None = None,
        model: str = GENERATOR_STREAM_MODEL,
    ) -> AsyncIterator[GenerationChunk]:
        """The responses of one streamed generation as they arrive, over a gRPC stream.

        Same inputs, tenant priority and errors as ``generate``; closing the iterator early
        cancels the stream, and the model stops generating for it.
        """
        inputs = _generation_inputs(prompt, system, max_tokens, temperature, seed)
        with self.priorities.admit(tenant) as priority:

            async def one_request():
                yield {"model_name": model, "inputs": inputs, "priority": priority}

            # The server ends the stream after the final response of the (only) request.
            responses = self._grpc().stream_infer(one_request(), stream_timeout=self.timeout_s)
            try:
                async for result, error in responses:
                    if error is not None:
                        raise _translate(error, model)
                    yield _generation_from(result, GenerationChunk)
            except (InferenceServerException, grpc.RpcError) as exc:
                raise _translate(exc, model) from exc
            finally:
                responses.cancel()

    async def stream_generate(
        self,
        prompt: str,
        *,
        system: str,
        max_tokens: int,
        temperature: float,
        seed: int = 0,
        tenant: str | None = None,
        model: str = GENERATOR_STREAM_MODEL,
    ) -> AsyncIterator[str]:
        """Text deltas of one generation as they are produced; joined, they are the whole text
        (with temperature 0, the text ``generate`` returns for the same prompt and limits)."""
        async for chunk in self.stream_chunks(
            prompt, system=system, max_tokens=max_tokens, temperature=temperature, seed=seed, tenant=tenant, model=model
        ):
            if chunk.text:
                yield chunk.text
