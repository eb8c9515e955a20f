"""Async client for the models served by Triton (``content_generator``, ``embedder``) over gRPC.

Each call is one Triton request; Triton's dynamic batcher merges concurrent callers into
model batches, so callers just run requests concurrently. Errors are mapped to what callers
act on: ``InferenceUnavailable`` (retry later / HTTP 503) and ``ValueError`` (bad input).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

GENERATOR_MODEL = "content_generator"
EMBEDDER_MODEL = "embedder"
EMBED_CHUNK = 64  # the embedder's max_batch_size

# gRPC codes that mean "the server or model can't serve right now": worth retrying.
_UNAVAILABLE_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "CANCELLED", "ABORTED"}
_BAD_INPUT_CODES = {"INVALID_ARGUMENT", "OUT_OF_RANGE"}


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


def _scalar_input(name: str, value: float | int, datatype: str, dtype: type) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, [1, 1], datatype)
    tensor.set_data_from_numpy(np.array([[value]], dtype=dtype))
    return tensor


class TritonInference:
    """Async client of one Triton server; create once per process and ``close()`` at the end."""

    def __init__(self, grpc_url: str, *, timeout_s: float = 120.0) -> None:
        self.grpc_url = grpc_url
        self.timeout_s = timeout_s
        # Created on first use, inside the running event loop (grpc.aio binds to it).
        self._client: grpcclient.InferenceServerClient | None = None

    def _grpc(self) -> grpcclient.InferenceServerClient:
        if self._client is None:
            self._client = grpcclient.InferenceServerClient(self.grpc_url)
        return self._client

    async def generate(
        self, prompt: str, *, system: str, max_tokens: int, temperature: float
    ) -> Generation:
        """Generate copy for one prompt (ChatML with ``system``; temperature 0 is greedy and reproducible)."""
        inputs = [
            _string_input("PROMPT", [prompt]),
            _string_input("SYSTEM", [system]),
            _scalar_input("MAX_TOKENS", int(max_tokens), "INT32", np.int32),
            _scalar_input("TEMPERATURE", float(temperature), "FP32", np.float32),
        ]
        try:
            result = await self._grpc().infer(GENERATOR_MODEL, inputs, client_timeout=self.timeout_s)
        except (InferenceServerException, grpc.RpcError) as exc:
            raise _translate(exc, GENERATOR_MODEL) from exc
        response = result.get_response()
        text = result.as_numpy("TEXT").reshape(-1)[0]
        return Generation(
            text=text.decode("utf-8") if isinstance(text, bytes) else str(text),
            prompt_tokens=int(result.as_numpy("PROMPT_TOKENS").reshape(-1)[0]),
            completion_tokens=int(result.as_numpy("COMPLETION_TOKENS").reshape(-1)[0]),
            model=f"{response.model_name}@{response.model_version}",
        )

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """384-d unit vectors, one per text, in order."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBED_CHUNK):
            chunk = texts[start : start + EMBED_CHUNK]
            try:
                result = await self._grpc().infer(
                    EMBEDDER_MODEL, [_string_input("TEXT", chunk)], client_timeout=self.timeout_s
                )
            except (InferenceServerException, grpc.RpcError) as exc:
                raise _translate(exc, EMBEDDER_MODEL) from exc
            vectors.extend(result.as_numpy("EMBEDDING").astype(float).tolist())
        return vectors

    async def inference_count(self, model_name: str) -> int:
        """Successful inference requests the model has served since the server started."""
        try:
            stats = await self._grpc().get_inference_statistics(
                model_name, as_json=True, client_timeout=self.timeout_s
            )
        except (InferenceServerException, grpc.RpcError) as exc:
            raise _translate(exc, model_name) from exc
        return sum(
            int(entry.get("inference_stats", {}).get("success", {}).get("count", 0))
            for entry in stats.get("model_stats", [])
        )

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
