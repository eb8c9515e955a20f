"""Triton Python-backend model: embedder on GPU (all-MiniLM-L6-v2 with torch CUDA).

Same tensors as the CPU model (TEXT -> 384-d L2-normalized EMBEDDING). It stays a
Python-backend model rather than a ``tensorrt_plan`` engine because the input is raw text:
a TensorRT plan takes token ids, so it would need an ensemble with a tokenizer model in
front, for a 22M-parameter encoder that is not the bottleneck. ``deploy/gpu/build_engines.py``
copies the sentence-transformers folder to ``1/weights`` next to this file.

Not run in this project's environment (no GPU there): see deploy/README.md.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _use_agency_site_packages() -> None:
    for entry in reversed(os.environ.get("AGENCY_SITE_PACKAGES", "").split(os.pathsep)):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)


_use_agency_site_packages()
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

EMBEDDING_DIM = 384


def _invalid(message: str) -> "pb_utils.TritonError":
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
    return pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        weights = Path(args["model_repository"]) / str(args["model_version"]) / params.get("weights_dir", "weights")
        if not (weights / "modules.json").is_file():
            raise RuntimeError(f"{weights} holds no sentence-transformers model; run deploy/gpu/build_engines.py")
        # Triton assigns each instance its GPU (instance_group gpus); honour it.
        device = f"cuda:{args.get('model_instance_device_id', '0')}"
        self.batch_size = max(1, int(config.get("max_batch_size", 64)))
        self.model = SentenceTransformer(str(weights), device=device)
        self.model.max_seq_length = int(params.get("max_seq_length", "256"))
        # float32 by default: vectors stored by the CPU embedder stay directly comparable.
        if params.get("dtype", "float32") == "float16":
            self.model.half()
        self.torch = torch
        dim = self.model.get_sentence_embedding_dimension()
        if dim != EMBEDDING_DIM:
            raise RuntimeError(f"embedder produces {dim}-d vectors; config.pbtxt declares {EMBEDDING_DIM}")

    def execute(self, requests: list) -> list:
        texts: list[str] = []
        spans: list = []
        for request in requests:
            tensor = pb_utils.get_input_tensor_by_name(request, "TEXT")
            try:
                if tensor is None:
                    raise ValueError("TEXT is required")
                rows = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in tensor.as_numpy().reshape(-1)]
            except (ValueError, UnicodeDecodeError) as exc:
                spans.append(_invalid(f"TEXT must be UTF-8 text: {exc}"))
                continue
            spans.append((len(texts), len(texts) + len(rows)))
            texts.extend(rows)

        try:
            with self.torch.inference_mode():
                vectors = (
                    self.model.encode(
                        texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
                    ).astype(np.float32)
                    if texts
                    else np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
                )
        except Exception as exc:  # answer every request instead of crashing the stub
            failure = pb_utils.TritonError(f"embedding failed: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=failure) for _ in requests]

        responses = []
        for span in spans:
            if isinstance(span, tuple):
                start, end = span
                responses.append(
                    pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("EMBEDDING", vectors[start:end])])
                )
            else:
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=span))
        return responses
