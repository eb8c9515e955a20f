"""Triton Python-backend model: marketing copy from SmolLM2-135M-Instruct (ctranslate2).

The compute type (``int8`` or ``float32``) and generation parameters come from config.pbtxt,
overridden per model version by ``<version>/version.json`` (written by the rollout workflow).

The backend stub runs an isolated interpreter that ignores PYTHONPATH, so the venv's
site-packages (``AGENCY_SITE_PACKAGES``) go on ``sys.path`` before any third-party import.
Only ctranslate2 + tokenizers are used here (no torch), which keeps loading under a second.

The same file serves ``content_generator_stream`` (a symlink): when the model's config is
decoupled, each request gets its text as a stream of responses (deltas every few tokens), the
last one flagged final; the decoding parameters are exactly those of the one-response path.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path


def _use_agency_site_packages() -> None:
    for entry in reversed(os.environ.get("AGENCY_SITE_PACKAGES", "").split(os.pathsep)):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)


_use_agency_site_packages()

import ctranslate2  # noqa: E402
import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

CHAT_MARKERS = ("<|im_start|>", "<|im_end|>")
END_TOKENS = ["<|im_end|>", "<|endoftext|>"]


@dataclass
class Job:
    """One prompt row of one request."""

    request_index: int
    row: int
    prompt_tokens: list[str]
    max_tokens: int
    temperature: float
    seed: int


@dataclass
class Stream:
    """One decoupled request being generated: where its deltas go and what was sent so far."""

    job: Job
    sender: object  # pb_utils.InferenceResponseSender
    ids: list[int] = field(default_factory=list)
    sent_text: str = ""
    unsent_tokens: int = 0
    closed: bool = False


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
    # Markers inside caller text would let a prompt forge turns; drop them.
    for marker in CHAT_MARKERS:
        system = system.replace(marker, "")
        prompt = prompt.replace(marker, "")
    return (
        f"<|im_start|>system\n{system.strip()}<|im_end|>\n"
        f"<|im_start|>user\n{prompt.strip()}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def _response(texts: list[str], prompt_tokens: list[int], completion_tokens: list[int]):
    return pb_utils.InferenceResponse(
        output_tensors=[
            pb_utils.Tensor("TEXT", np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_)),
            pb_utils.Tensor("PROMPT_TOKENS", np.array(prompt_tokens, dtype=np.int32).reshape(-1, 1)),
            pb_utils.Tensor("COMPLETION_TOKENS", np.array(completion_tokens, dtype=np.int32).reshape(-1, 1)),
        ]
    )


def version_parameters(args: dict) -> dict[str, str]:
    """config.pbtxt parameters, overridden by this version's version.json (if any)."""
    config = json.loads(args["model_config"])
    params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
    overrides = Path(args.get("model_repository", "")) / str(args.get("model_version", "")) / "version.json"
    if overrides.is_file():
        params.update({str(k): str(v) for k, v in json.loads(overrides.read_text()).items()})
    return params


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = version_parameters(args)
        self.min_tokens = int(params.get("min_tokens", "0"))
        self.max_tokens_ceiling = int(params.get("max_tokens_ceiling", "512"))
        self.max_prompt_tokens = int(params.get("max_prompt_tokens", "1536"))
        self.sampling_topk = int(params.get("sampling_topk", "40"))
        self.sampling_topp = float(params.get("sampling_topp", "0.95"))
        self.repetition_penalty = float(params.get("repetition_penalty", "1.0"))
        self.default_system = params.get("default_system_prompt", "You are a marketing copywriter.")
        self.max_batch_size = max(1, int(config.get("max_batch_size", 8)))
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(config)
        # Streaming: a delta goes out at the first text, then at most every this many tokens.
        self.stream_chunk_tokens = max(1, int(params.get("stream_chunk_tokens", "4")))

        models_dir = os.environ.get("AGENCY_MODELS_DIR")
        if not models_dir:
            raise RuntimeError("AGENCY_MODELS_DIR is not set; start Triton through agency.triton_server")
        model_dir = Path(models_dir) / "content_generator"
        missing = [n for n in ("model.bin", "config.json", "tokenizer.json") if not (model_dir / n).is_file()]
        if missing:
            raise RuntimeError(
                f"content_generator weights not found in {model_dir} (missing {', '.join(missing)}); "
                "run `agency models prepare` first"
            )
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.generator = ctranslate2.Generator(
            str(model_dir),
            device="cpu",
            compute_type=params.get("compute_type", "int8"),
            intra_threads=int(params.get("intra_threads", "0")),
        )

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
        max_tokens = max_tokens_tensor.as_numpy().reshape(-1).tolist()
        temperatures = temperature_tensor.as_numpy().reshape(-1).tolist()
        seed_tensor = pb_utils.get_input_tensor_by_name(request, "SEED")
        seeds = seed_tensor.as_numpy().reshape(-1).tolist() if seed_tensor is not None else [0] * rows
        if not (len(systems) == len(max_tokens) == len(temperatures) == len(seeds) == rows):
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
            text = _chatml(systems[row] or self.default_system, prompts[row])
            ids = self.tokenizer.encode(text, add_special_tokens=False).ids
            if len(ids) > self.max_prompt_tokens:
                raise ValueError(f"prompt is {len(ids)} tokens; the limit is {self.max_prompt_tokens}")
            jobs.append(
                Job(
                    request_index=request_index,
                    row=row,
                    prompt_tokens=[self.tokenizer.id_to_token(i) for i in ids],
                    max_tokens=min(int(max_tokens[row]), self.max_tokens_ceiling),
                    temperature=min(temperature, 2.0),
                    seed=int(seeds[row]),
                )
            )
        return jobs

    # ---- generation ------------------------------------------------------------------
    def _decoding_options(self, jobs: list[Job], temperature: float) -> dict:
        """generate_batch arguments for jobs sharing sampling parameters (both paths use them).

        Temperature 0 is greedy and reproducible. Sampling is seeded from the batch's seeds, so
        a request alone in its batch is reproducible; in a shared batch the draws interleave
        with its neighbours'. The response cache is what makes a (prompt, seed) stable.
        """
        greedy = temperature == 0.0
        if not greedy:
            ctranslate2.set_random_seed(sum(job.seed for job in jobs) % (2**31) or 1)
        # Greedy decoding is prefix-stable, so jobs with different limits can share a batch and
        # be cut to their own limit afterwards.
        return dict(
            max_batch_size=self.max_batch_size,
            max_length=max(job.max_tokens for job in jobs),
            min_length=min(self.min_tokens, min(job.max_tokens for job in jobs)),
            end_token=END_TOKENS,
            include_prompt_in_result=False,
            repetition_penalty=self.repetition_penalty,
            sampling_topk=1 if greedy else self.sampling_topk,
            sampling_topp=1.0 if greedy else self.sampling_topp,
            sampling_temperature=1.0 if greedy else temperature,
        )

    def _completion(self, job: Job, ids: list[int]) -> tuple[str, int]:
        """(text, completion tokens) of a finished sequence, cut to the job's own limit."""
        ids = ids[: job.max_tokens]
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip(), len(ids)

    def _generate(self, jobs: list[Job], temperature: float) -> list[tuple[str, int]]:
        """One ctranslate2 call for jobs sharing sampling parameters; returns (text, tokens)."""
        results = self.generator.generate_batch(
            [job.prompt_tokens for job in jobs], **self._decoding_options(jobs, temperature)
        )
        return [self._completion(job, result.sequences_ids[0]) for job, result in zip(jobs, results)]

    # ---- streaming (decoupled) -----------------------------------------------------------
    def _stable_text(self, ids: list[int]) -> str:
        """The decoded text that can no longer change as tokens are appended.

        The whole id list is decoded each time (a token may hold part of a UTF-8 character);
        an incomplete character (U+FFFD at the end) and trailing whitespace (the final text
        is stripped) are held back until later tokens settle them.
        """
        text = self.tokenizer.decode(ids, skip_special_tokens=True).lstrip()
        return text.rstrip().rstrip("\ufffd").rstrip()

    def _send_delta(self, stream: Stream) -> None:
        stable = self._stable_text(stream.ids)
        if len(stable) > len(stream.sent_text) and stable.startswith(stream.sent_text):
            stream.sender.send(
                _response([stable[len(stream.sent_text) :]], [len(stream.job.prompt_tokens)], [len(stream.ids)])
            )
            stream.sent_text = stable
            stream.unsent_tokens = 0

    def _close(self, stream: Stream, response=None) -> None:
        if not stream.closed:
            stream.closed = True
            stream.sender.send(response, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    def _stream(self, streams: list[Stream], temperature: float) -> None:
        """One ctranslate2 call for streams sharing sampling parameters; deltas sent per step."""
        jobs = [stream.job for stream in streams]

        def on_step(step) -> bool:  # True stops decoding for this row
            stream = streams[step.batch_id]
            if stream.closed:
                return True
            if stream.sender.is_cancelled():  # the client went away: stop spending CPU on it
                self._close(stream)
                return True
            if step.token in END_TOKENS:  # not part of the completion (nor of its token count)
                return True
            stream.ids.append(step.token_id)
            stream.unsent_tokens += 1
            if not stream.sent_text or stream.unsent_tokens >= self.stream_chunk_tokens:
                self._send_delta(stream)
            return len(stream.ids) >= stream.job.max_tokens

        try:
            results = self.generator.generate_batch(
                [job.prompt_tokens for job in jobs], callback=on_step, **self._decoding_options(jobs, temperature)
            )
        except Exception as exc:  # one failing group must not fail the others
            for stream in streams:
                error = _error(f"generation failed: {exc}", invalid_input=False)
                self._close(stream, pb_utils.InferenceResponse(output_tensors=[], error=error))
            return
        for stream, result in zip(streams, results):
            # The last response carries the rest of exactly the text the one-response path returns.
            text, completion_tokens = self._completion(stream.job, result.sequences_ids[0])
            rest = text[len(stream.sent_text) :] if text.startswith(stream.sent_text) else ""
            self._close(stream, _response([rest], [len(stream.job.prompt_tokens)], [completion_tokens]))

    def _execute_decoupled(self, requests: list) -> None:
        groups: dict[float, list[Stream]] = defaultdict(list)
        for index, request in enumerate(requests):
            sender = request.get_response_sender()
            try:
                jobs = self._parse(index, request)
                if len(jobs) != 1:
                    raise ValueError("a streaming request holds exactly one prompt")
            except ValueError as exc:
                error = pb_utils.InferenceResponse(output_tensors=[], error=_error(str(exc), invalid_input=True))
                sender.send(error, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                continue
            groups[jobs[0].temperature].append(Stream(job=jobs[0], sender=sender))
        for temperature, streams in groups.items():
            self._stream(streams, temperature)

    def execute(self, requests: list) -> list | None:
        if self.decoupled:
            self._execute_decoupled(requests)
            return None
        errors: dict[int, "pb_utils.TritonError"] = {}
        jobs_by_request: dict[int, list[Job]] = {}
        for index, request in enumerate(requests):
            try:
                jobs_by_request[index] = self._parse(index, request)
            except ValueError as exc:
                errors[index] = _error(str(exc), invalid_input=True)

        # Requests with the same temperature share one generate_batch call.
        groups: dict[float, list[Job]] = defaultdict(list)
        for jobs in jobs_by_request.values():
            for job in jobs:
                groups[job.temperature].append(job)

        outputs: dict[tuple[int, int], tuple[str, int]] = {}
        for temperature, jobs in groups.items():
            try:
                for job, output in zip(jobs, self._generate(jobs, temperature)):
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
            responses.append(_response(texts, [len(job.prompt_tokens) for job in jobs], completion))
        return responses

    def finalize(self) -> None:
        self.generator = None
