"""Triton Python-backend model: content_generator on GPU, running a TensorRT-LLM engine.

Same tensors, ChatML template and end tokens as the CPU model in model_repository/; only the
engine differs. ``deploy/gpu/build_engines.py`` copies this file into the GPU repository and
puts the engine in ``1/engine`` and the tokenizer in ``1/tokenizer`` next to it, so the
repository is self-contained (no AGENCY_MODELS_DIR).

Not run in this project's environment (no GPU, no TensorRT-LLM there): see deploy/README.md.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


def _use_agency_site_packages() -> None:
    # Only matters when this file is served by the pip-installed tritonserver, whose stub ignores
    # PYTHONPATH; inside the NGC TensorRT-LLM container the variable is unset and this is a no-op.
    for entry in reversed(os.environ.get("AGENCY_SITE_PACKAGES", "").split(os.pathsep)):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)


_use_agency_site_packages()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

CHAT_MARKERS = ("<|im_start|>", "<|im_end|>")
END_TOKENS = ("<|im_end|>", "<|endoftext|>")


@dataclass
class Job:
    """One prompt row of one request."""

    request_index: int
    row: int
    prompt_ids: list[int]
    max_tokens: int
    temperature: float
    seed: int | None


def _error(message: str, invalid_input: bool) -> "pb_utils.TritonError":
    code = getattr(pb_utils.TritonError, "INVALID_ARG" if invalid_input else "INTERNAL", None)
    return pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)


def _strings(tensor, name: str) -> list[str]:
    try:
        return [
            value.decode("utf-8") if isinstance(value, bytes) else str(value)
            for value in tensor.as_numpy().reshape(-1)
        ]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name} must be UTF-8 text") from exc


def _chatml(system: str, prompt: str) -> str:
    # Identical to the CPU model: markers inside caller text would let a prompt forge turns.
    for marker in CHAT_MARKERS:
        system = system.replace(marker, "")
        prompt = prompt.replace(marker, "")
    return (
        f"<|im_start|>system\n{system.strip()}<|im_end|>\n"
        f"<|im_start|>user\n{prompt.strip()}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def _load_runner(engine_dir: Path, runtime: str):
    """The C++ runtime (in-flight batching, paged KV cache) when asked for, else the Python one."""
    from tensorrt_llm.runtime import ModelRunner

    if runtime == "cpp":
        from tensorrt_llm.runtime import ModelRunnerCpp

        return ModelRunnerCpp.from_dir(engine_dir=str(engine_dir), rank=0)
    return ModelRunner.from_dir(engine_dir=str(engine_dir), rank=0)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        self.max_tokens_ceiling = int(params.get("max_tokens_ceiling", "512"))
        self.max_prompt_tokens = int(params.get("max_prompt_tokens", "1536"))
        self.sampling_topk = int(params.get("sampling_topk", "40"))
        self.sampling_topp = float(params.get("sampling_topp", "0.95"))
        self.repetition_penalty = float(params.get("repetition_penalty", "1.0"))
        self.min_tokens = int(params.get("min_tokens", "0"))
        self.default_system = params.get("default_system_prompt", "You are a marketing copywriter.")

        version_dir = Path(args["model_repository"]) / str(args["model_version"])
        engine_dir = version_dir / params.get("engine_dir", "engine")
        tokenizer_dir = version_dir / params.get("tokenizer_dir", "tokenizer")
        for required in (engine_dir / "config.json", tokenizer_dir / "tokenizer.json"):
            if not required.is_file():
                raise RuntimeError(
                    f"{required} is missing; build the GPU repository with deploy/gpu/build_engines.py"
                )
        self.tokenizer = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
        self.end_ids = [i for i in (self.tokenizer.token_to_id(t) for t in END_TOKENS) if i is not None]
        if not self.end_ids:
            raise RuntimeError(f"the tokenizer knows none of the end tokens {END_TOKENS}")
        # <|im_end|> ends the assistant turn; the engine stops on it, <|endoftext|> is cut after.
        self.end_id = self.end_ids[0]
        self.pad_id = self.tokenizer.token_to_id("<|endoftext|>") or self.end_id
        self.runner = _load_runner(engine_dir, params.get("runtime", "python"))

    # ---- request parsing -------------------------------------------------------------
    def _parse(self, request_index: int, request) -> list[Job]:
        prompt_tensor = pb_utils.get_input_tensor_by_name(request, "PROMPT")
        max_tokens_tensor = pb_utils.get_input_tensor_by_name(request, "MAX_TOKENS")
        temperature_tensor = pb_utils.get_input_tensor_by_name(request, "TEMPERATURE")
        if prompt_tensor is None or max_tokens_tensor is None or temperature_tensor is None:
            raise ValueError("PROMPT, MAX_TOKENS and TEMPERATURE are required")
        prompts = _strings(prompt_tensor, "PROMPT")
        rows = len(prompts)
        system_tensor = pb_utils.get_input_tensor_by_name(request, "SYSTEM")
        systems = _strings(system_tensor, "SYSTEM") if system_tensor is not None else [""] * rows
        seed_tensor = pb_utils.get_input_tensor_by_name(request, "SEED")
        seeds = seed_tensor.as_numpy().reshape(-1).tolist() if seed_tensor is not None else [None] * rows
        max_tokens = max_tokens_tensor.as_numpy().reshape(-1).tolist()
        temperatures = temperature_tensor.as_numpy().reshape(-1).tolist()
        if not (len(systems) == len(seeds) == len(max_tokens) == len(temperatures) == rows):
            raise ValueError("all inputs must have the same batch size")

        jobs = []
        for row in range(rows):
            if not prompts[row].strip():
                raise ValueError("PROMPT must not be empty")
            if max_tokens[row] < 1:
                raise ValueError("MAX_TOKENS must be at least 1")
            temperature = float(temperatures[row])
            if not math.isfinite(temperature) or temperature < 0:
                raise ValueError("TEMPERATURE must be a finite number >= 0")
            ids = self.tokenizer.encode(
                _chatml(systems[row] or self.default_system, prompts[row]), add_special_tokens=False
            ).ids
            if len(ids) > self.max_prompt_tokens:
                raise ValueError(f"prompt is {len(ids)} tokens; the limit is {self.max_prompt_tokens}")
            jobs.append(
                Job(
                    request_index=request_index,
                    row=row,
                    prompt_ids=ids,
                    max_tokens=min(int(max_tokens[row]), self.max_tokens_ceiling),
                    temperature=min(temperature, 2.0),
                    seed=None if seeds[row] is None else int(seeds[row]),
                )
            )
        return jobs

    # ---- generation ------------------------------------------------------------------
    def _generate(self, jobs: list[Job], temperature: float, seed: int | None) -> list[tuple[str, int]]:
        """One engine call for jobs sharing sampling parameters; returns (text, completion tokens)."""
        greedy = temperature == 0.0
        sampling = {} if seed is None else {"random_seed": seed}
        with torch.no_grad():
            outputs = self.runner.generate(
                batch_input_ids=[torch.tensor(job.prompt_ids, dtype=torch.int32) for job in jobs],
                max_new_tokens=max(job.max_tokens for job in jobs),
                end_id=self.end_id,
                pad_id=self.pad_id,
                temperature=1.0 if greedy else temperature,
                top_k=1 if greedy else self.sampling_topk,
                top_p=0.0 if greedy else self.sampling_topp,
                repetition_penalty=self.repetition_penalty,
                min_length=min(self.min_tokens, min(job.max_tokens for job in jobs)),
                output_sequence_lengths=True,
                return_dict=True,
                **sampling,
            )
        torch.cuda.synchronize()
        output_ids = outputs["output_ids"].cpu().tolist()  # [batch, beams, prompt + generated]
        lengths = outputs["sequence_lengths"].cpu().tolist()  # [batch, beams]
        results = []
        for index, job in enumerate(jobs):
            generated = output_ids[index][0][len(job.prompt_ids) : lengths[index][0]]
            for position, token in enumerate(generated):
                if token in self.end_ids:
                    generated = generated[:position]
                    break
            generated = generated[: job.max_tokens]
            results.append((self.tokenizer.decode(generated, skip_special_tokens=True).strip(), len(generated)))
        return results

    def execute(self, requests: list) -> list:
        errors: dict[int, "pb_utils.TritonError"] = {}
        jobs_by_request: dict[int, list[Job]] = {}
        for index, request in enumerate(requests):
            try:
                jobs_by_request[index] = self._parse(index, request)
            except ValueError as exc:
                errors[index] = _error(str(exc), invalid_input=True)

        # Jobs with the same temperature and seed share one engine call.
        groups: dict[tuple[float, int | None], list[Job]] = defaultdict(list)
        for jobs in jobs_by_request.values():
            for job in jobs:
                groups[(job.temperature, job.seed)].append(job)

        outputs: dict[tuple[int, int], tuple[str, int]] = {}
        for (temperature, seed), jobs in groups.items():
            try:
                for job, output in zip(jobs, self._generate(jobs, temperature, seed)):
                    outputs[(job.request_index, job.row)] = output
            except Exception as exc:  # one failing group must not fail the others
                for job in jobs:
                    errors[job.request_index] = _error(f"generation failed: {exc}", invalid_input=False)

        responses = []
        for index in range(len(requests)):
            if index in errors:
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=errors[index]))
                continue
            jobs = jobs_by_request[index]
            texts = [outputs[(index, job.row)][0] for job in jobs]
            completion = [outputs[(index, job.row)][1] for job in jobs]
            prompt = [len(job.prompt_ids) for job in jobs]
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("TEXT", np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_)),
                        pb_utils.Tensor("PROMPT_TOKENS", np.array(prompt, dtype=np.int32).reshape(-1, 1)),
                        pb_utils.Tensor("COMPLETION_TOKENS", np.array(completion, dtype=np.int32).reshape(-1, 1)),
                    ]
                )
            )
        return responses

    def finalize(self) -> None:
        self.runner = None
