"""The content generator served by Triton, measured: INT8 vs FP32, dynamic batching, overhead, streaming.

One run starts a private tritonserver (its own home and ports) on a repository rendered from a
temporary copy of ``model_repository/`` holding only the generator variants under test:

* ``gen_int8`` / ``gen_fp32``: content_generator with ``compute_type`` int8 / float32;
* ``gen_int8_nobatch``: ``gen_int8`` without its ``dynamic_batching`` block (max_batch_size kept),
  so Triton runs one request per model execution;
* ``content_generator_stream``: the decoupled (streaming) model, int8, as committed.

All variants have the response cache disabled, so every request is real work; the same fixed
prompts are used in every cell, greedy (temperature 0), so INT8 and FP32 do comparable work.
Tokens/s counts the completion tokens the model actually generated.

Variants compared with each other run interleaved (request by request at concurrency 1, in
alternating rounds at concurrency 4 and 8), so load from other processes hits them alike.
It reports, against baselines run in this same process (machines are noisy; no timed asserts):

* tokens/s and p50/p95 latency for FP32 and INT8 at concurrency 1, 4 and 8, and INT8/FP32;
* the dynamic batching gain: ``gen_int8`` vs ``gen_int8_nobatch`` at concurrency 8;
* Triton's overhead: the same ctranslate2 engine (same weights, compute type and decoding
  parameters) called in this process, one request at a time, vs ``gen_int8`` at concurrency 1
  (overhead = triton_time / in_process_time - 1; greedy texts must also be identical); the
  same for float32, which also gives the engine's own INT8/FP32 ratio without Triton;
* streaming: first-token latency of ``content_generator_stream`` vs the full-response latency
  of ``gen_int8`` for the same prompts.

    .venv/bin/python bench/inference.py [--max-tokens 48 --requests 8 --batch-requests 16 --rounds 2 --json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agency.inference import TritonInference  # noqa: E402
from agency.models_prep import models_ready  # noqa: E402
from agency.settings import Settings  # noqa: E402
from agency.triton_server import TritonServer  # noqa: E402

GENERATOR_TEMPLATE = "content_generator"
STREAM_TEMPLATE = "content_generator_stream"
INT8, FP32, INT8_NOBATCH = "gen_int8", "gen_fp32", "gen_int8_nobatch"
SYSTEM = "You are a marketing copywriter."
PROMPTS = [
    "Write a short LinkedIn post announcing a new project-management app for small teams.",
    "Write a tweet promoting a spring sale on running shoes.",
    "Write an email subject line and opening sentence for a coffee subscription launch.",
    "Write a product description for a reusable water bottle that keeps drinks cold.",
    "Write a blog intro about why local bakeries should post on Instagram.",
    "Write a short ad for a yoga studio offering a free first class.",
    "Write a LinkedIn post about a webinar on cloud cost savings.",
    "Write a tweet announcing extended opening hours at a bookshop.",
    "Write a newsletter opening for a garden centre's autumn planting guide.",
    "Write a short post inviting customers to a bike repair workshop.",
    "Write a product blurb for noise-cancelling headphones aimed at students.",
    "Write a Facebook post for a family restaurant's new kids' menu.",
    "Write an ad headline and one sentence for a language-learning app.",
    "Write a tweet celebrating a pet shop's tenth anniversary.",
    "Write a LinkedIn post recruiting volunteers for a beach clean-up.",
    "Write a short promo for an online photography course for beginners.",
]
CHAT_MARKERS = ("<|im_start|>", "<|im_end|>")
END_TOKENS = ["<|im_end|>", "<|endoftext|>"]


def say(message: str) -> None:
    print(message, flush=True)


# ---- the bench repository --------------------------------------------------------------------
_PARAMETER = re.compile(r'parameters:\s*\{\s*key:\s*"([^"]+)"\s*value:\s*\{\s*string_value:\s*"([^"]*)"\s*\}\s*\}')


def config_parameters(config: str) -> dict[str, str]:
    return dict(_PARAMETER.findall(config))


def set_parameter(config: str, key: str, value: str) -> str:
    pattern = re.compile(rf'(parameters:\s*\{{\s*key:\s*"{re.escape(key)}"\s*value:\s*\{{\s*string_value:\s*")[^"]*(")')
    text, count = pattern.subn(rf"\g<1>{value}\g<2>", config)
    if count != 1:
        raise RuntimeError(f"the generator config has {count} '{key}' parameters, expected 1")
    return text


def remove_block(config: str, name: str) -> str:
    """``config`` without the top-level ``name { ... }`` block (braces matched, so nesting is fine)."""
    match = re.search(rf"^{re.escape(name)}\s*\{{", config, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"the generator config has no {name} block")
    depth, end = 0, match.end() - 1
    for end in range(match.end() - 1, len(config)):
        depth += {"{": 1, "}": -1}.get(config[end], 0)
        if depth == 0:
            break
    return config[: match.start()] + config[end + 1 :]


def write_bench_templates(source: Path, target: Path) -> dict[str, str]:
    """Template folders for the variants under ``target``; returns the generator's parameters."""
    template = (source / GENERATOR_TEMPLATE / "config.pbtxt").read_text()
    model_py = source / GENERATOR_TEMPLATE / "1" / "model.py"
    # Every request must run the model: the same prompts recur across cells.
    uncached = remove_block(template, "response_cache")
    variants = {
        INT8: set_parameter(uncached, "compute_type", "int8"),
        FP32: set_parameter(uncached, "compute_type", "float32"),
        INT8_NOBATCH: remove_block(set_parameter(uncached, "compute_type", "int8"), "dynamic_batching"),
        # Decoupled models cannot use the response cache; its compute type comes from settings.
        STREAM_TEMPLATE: (source / STREAM_TEMPLATE / "config.pbtxt").read_text(),
    }
    for name, config in variants.items():
        (target / name / "1").mkdir(parents=True)
        (target / name / "config.pbtxt").write_text(config)
        shutil.copyfile(model_py, target / name / "1" / "model.py")
    return config_parameters(template)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- the same engine in this process ------------------------------------------------------------
class InProcessGenerator:
    """ctranslate2.Generator over the served weights, decoding exactly as the Triton model does
    for a greedy request (ChatML prompt, end tokens, repetition penalty, cut to max_tokens)."""

    def __init__(self, model_dir: Path, parameters: dict[str, str], compute_type: str) -> None:
        import ctranslate2
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.generator = ctranslate2.Generator(
            str(model_dir), device="cpu", compute_type=compute_type,
            intra_threads=int(parameters.get("intra_threads", "0")),
        )
        self.repetition_penalty = float(parameters.get("repetition_penalty", "1.0"))
        self.min_tokens = int(parameters.get("min_tokens", "0"))

    def generate(self, system: str, prompt: str, max_tokens: int) -> tuple[str, int]:
        for marker in CHAT_MARKERS:
            system, prompt = system.replace(marker, ""), prompt.replace(marker, "")
        chat = (
            f"<|im_start|>system\n{system.strip()}<|im_end|>\n"
            f"<|im_start|>user\n{prompt.strip()}<|im_end|>\n<|im_start|>assistant\n"
        )
        ids = self.tokenizer.encode(chat, add_special_tokens=False).ids
        result = self.generator.generate_batch(
            [[self.tokenizer.id_to_token(i) for i in ids]],
            max_length=max_tokens,
            min_length=min(self.min_tokens, max_tokens),
            end_token=END_TOKENS,
            include_prompt_in_result=False,
            repetition_penalty=self.repetition_penalty,
            sampling_topk=1,
        )[0]
        completion = result.sequences_ids[0][:max_tokens]
        return self.tokenizer.decode(completion, skip_special_tokens=True).strip(), len(completion)


# ---- measuring ---------------------------------------------------------------------------------
@dataclass
class Cell:
    model: str
    concurrency: int
    requests: int
    completion_tokens: int
    wall_s: float
    tokens_per_s: float
    latency_p50_s: float
    latency_p95_s: float


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass
class Tally:
    """Latencies, completion tokens and busy wall time of one (model, concurrency), summed over rounds."""

    model: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    tokens: int = 0
    wall_s: float = 0.0

    def cell(self) -> Cell:
        return Cell(
            model=self.model, concurrency=self.concurrency, requests=len(self.latencies),
            completion_tokens=self.tokens, wall_s=round(self.wall_s, 3),
            tokens_per_s=round(self.tokens / self.wall_s, 2),
            latency_p50_s=round(percentile(self.latencies, 50), 3),
            latency_p95_s=round(percentile(self.latencies, 95), 3),
        )


async def timed_generate(client: TritonInference, tally: Tally, model: str, prompt: str, seed: int, max_tokens: int) -> str:
    started = time.perf_counter()
    result = await client.generate(prompt, system=SYSTEM, max_tokens=max_tokens, temperature=0.0, seed=seed, model=model)
    tally.latencies.append(time.perf_counter() - started)
    tally.tokens += result.completion_tokens
    return result.text


async def run_round(client: TritonInference, tally: Tally, prompts: list[str], max_tokens: int) -> None:
    """``prompts`` through ``tally.model`` with ``tally.concurrency`` requests in flight (closed loop)."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(prompts)):
        queue.put_nowait(index)

    async def worker() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            await timed_generate(client, tally, tally.model, prompts[index], index, max_tokens)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tally.concurrency)))
    tally.wall_s += time.perf_counter() - started


def timed_local(engine: InProcessGenerator, tally: Tally, prompt: str, max_tokens: int) -> str:
    started = time.perf_counter()
    text, count = engine.generate(SYSTEM, prompt, max_tokens)
    tally.latencies.append(time.perf_counter() - started)
    tally.tokens += count
    return text


async def run_single(
    client: TritonInference, engines: dict[str, InProcessGenerator], prompts: list[str], max_tokens: int
) -> tuple[list[Tally], dict[str, str]]:
    """Concurrency 1, interleaved request by request so load drifts hit all alike: each compute
    type in process, then through Triton. Also returns how many in-process texts equal Triton's
    per compute type (greedy decoding agrees when the engines are really the same)."""
    served = {"int8": INT8, "float32": FP32}
    tallies = {name: (Tally(f"in_process_{name}", 1), Tally(served[name], 1)) for name in engines}
    identical = dict.fromkeys(engines, 0)
    for index, prompt in enumerate(prompts):
        for name, engine in engines.items():
            local, triton = tallies[name]
            local_text = timed_local(engine, local, prompt, max_tokens)
            identical[name] += await timed_generate(client, triton, served[name], prompt, index, max_tokens) == local_text
    flat = [tally for pair in tallies.values() for tally in pair]
    for tally in flat:
        tally.wall_s = sum(tally.latencies)  # one request at a time: busy time is the sum
    return flat, {name: f"{count}/{len(prompts)}" for name, count in identical.items()}


async def run_batched(client: TritonInference, prompts: list[str], concurrency: int, models: list[str], rounds: int, max_tokens: int) -> list[Tally]:
    """Each model at ``concurrency``, in alternating order over ``rounds`` rounds (noise hits all alike)."""
    tallies = {model: Tally(model, concurrency) for model in models}
    per_round = -(-len(prompts) // rounds)
    for number in range(rounds):
        chunk = prompts[number * per_round : (number + 1) * per_round]
        for model in models if number % 2 == 0 else reversed(models):
            await run_round(client, tallies[model], chunk, max_tokens)
    return list(tallies.values())


async def run_streaming(client: TritonInference, prompts: list[str], max_tokens: int) -> dict:
    """Each prompt streamed alone: time to the first text delta and to the final response."""
    first, total, chunks, tokens = [], [], [], 0
    for index, prompt in enumerate(prompts):
        started = time.perf_counter()
        first_at, count, completion = None, 0, 0
        async for chunk in client.stream_chunks(prompt, system=SYSTEM, max_tokens=max_tokens, temperature=0.0, seed=index):
            count += 1
            completion = chunk.completion_tokens
            if first_at is None and chunk.text:
                first_at = time.perf_counter() - started
        total.append(time.perf_counter() - started)
        first.append(first_at if first_at is not None else total[-1])
        chunks.append(count)
        tokens += completion
    return {
        "model": STREAM_TEMPLATE, "concurrency": 1, "requests": len(prompts), "completion_tokens": tokens,
        "first_token_p50_s": round(percentile(first, 50), 3), "first_token_p95_s": round(percentile(first, 95), 3),
        "stream_total_p50_s": round(percentile(total, 50), 3), "stream_total_p95_s": round(percentile(total, 95), 3),
        "responses_per_request_mean": round(float(np.mean(chunks)), 1),
    }


# ---- the run -------------------------------------------------------------------------------------
async def measure(server: TritonServer, args: argparse.Namespace, parameters: dict[str, str], models_dir: Path) -> dict:
    single = PROMPTS[: args.requests]
    batched = [PROMPTS[i % len(PROMPTS)] for i in range(args.batch_requests)]
    results: dict = {"cells": []}
    async with TritonInference(server.grpc_url, timeout_s=600.0) as client:
        say("warm-up: one request per model, and the in-process engines (int8, float32)")
        engines = {ct: InProcessGenerator(models_dir / GENERATOR_TEMPLATE, parameters, ct) for ct in ("int8", "float32")}
        for engine in engines.values():
            engine.generate(SYSTEM, PROMPTS[-1], args.max_tokens)
        for model in (INT8, FP32, INT8_NOBATCH):
            await client.generate(PROMPTS[-1], system=SYSTEM, max_tokens=args.max_tokens, temperature=0.0, model=model)
        async for _ in client.stream_chunks(PROMPTS[-1], system=SYSTEM, max_tokens=args.max_tokens, temperature=0.0):
            pass

        say(f"concurrency 1, {len(single)} requests each, interleaved: in-process int8, Triton {INT8}, "
            f"in-process float32, Triton {FP32}")
        tallies, identical = await run_single(client, engines, single, args.max_tokens)
        del engines
        results["in_process"] = [asdict(t.cell()) for t in tallies if t.model.startswith("in_process_")]
        results["cells"] += [asdict(t.cell()) for t in tallies if not t.model.startswith("in_process_")]
        results["texts_identical_in_process_vs_triton"] = identical

        for concurrency, models in ((4, [INT8, FP32]), (8, [INT8, FP32, INT8_NOBATCH])):
            say(f"concurrency {concurrency}, {len(batched)} requests each in {args.rounds} alternating rounds: "
                + ", ".join(models))
            tallies = await run_batched(client, batched, concurrency, models, args.rounds, args.max_tokens)
            results["cells"] += [asdict(t.cell()) for t in tallies]

        say(f"streaming, {len(single)} requests one at a time: Triton {STREAM_TEMPLATE}")
        results["streaming"] = await run_streaming(client, single, args.max_tokens)
    return results


def summarize(results: dict) -> dict:
    cells = {(c["model"], c["concurrency"]): c for c in results["cells"]}
    ratios = {
        f"int8_over_fp32_tokens_per_s_c{c}": round(cells[(INT8, c)]["tokens_per_s"] / cells[(FP32, c)]["tokens_per_s"], 2)
        for c in (1, 4, 8)
    }
    ratios["dynamic_batching_gain_c8"] = round(
        cells[(INT8, 8)]["tokens_per_s"] / cells[(INT8_NOBATCH, 8)]["tokens_per_s"], 2
    )
    local = {c["model"]: c for c in results["in_process"]}
    ratios["triton_overhead_c1"] = round(cells[(INT8, 1)]["wall_s"] / local["in_process_int8"]["wall_s"] - 1, 3)
    ratios["triton_overhead_c1_fp32"] = round(cells[(FP32, 1)]["wall_s"] / local["in_process_float32"]["wall_s"] - 1, 3)
    ratios["in_process_int8_over_fp32_tokens_per_s"] = round(
        local["in_process_int8"]["tokens_per_s"] / local["in_process_float32"]["tokens_per_s"], 2
    )
    ratios["stream_first_token_over_full_response_p50"] = round(
        results["streaming"]["first_token_p50_s"] / cells[(INT8, 1)]["latency_p50_s"], 3
    )
    return ratios


def print_report(results: dict) -> None:
    say("")
    say(f"{'model':<18} {'conc':>4} {'reqs':>4} {'tokens':>6} {'wall s':>7} {'tok/s':>7} {'p50 s':>6} {'p95 s':>6}")
    for cell in [*results["in_process"], *results["cells"]]:
        say(
            f"{cell['model']:<18} {cell['concurrency']:>4} {cell['requests']:>4} {cell['completion_tokens']:>6} "
            f"{cell['wall_s']:>7.2f} {cell['tokens_per_s']:>7.1f} {cell['latency_p50_s']:>6.2f} {cell['latency_p95_s']:>6.2f}"
        )
    stream = results["streaming"]
    int8_c1 = next(c for c in results["cells"] if c["model"] == INT8 and c["concurrency"] == 1)
    say("")
    say(f"streaming ({STREAM_TEMPLATE}, int8, concurrency 1, {stream['requests']} requests, "
        f"{stream['responses_per_request_mean']} responses/request):")
    say(f"  first token  p50 {stream['first_token_p50_s']:.3f} s  p95 {stream['first_token_p95_s']:.3f} s")
    say(f"  stream done  p50 {stream['stream_total_p50_s']:.3f} s  p95 {stream['stream_total_p95_s']:.3f} s")
    say(f"  full response ({INT8}) p50 {int8_c1['latency_p50_s']:.3f} s  p95 {int8_c1['latency_p95_s']:.3f} s")
    r = results["ratios"]
    say("")
    say(f"INT8/FP32 tokens/s: c1 {r['int8_over_fp32_tokens_per_s_c1']:.2f}x  c4 {r['int8_over_fp32_tokens_per_s_c4']:.2f}x  "
        f"c8 {r['int8_over_fp32_tokens_per_s_c8']:.2f}x   (target >= 1.8x)")
    say(f"  same engine in process (no Triton), c1: {r['in_process_int8_over_fp32_tokens_per_s']:.2f}x")
    say(f"dynamic batching gain at c8 (on/off tokens/s): {r['dynamic_batching_gain_c8']:.2f}x")
    say(f"Triton overhead vs in-process engine at c1: int8 {r['triton_overhead_c1'] * 100:+.1f}%   (target <= 15%); "
        f"float32 {r['triton_overhead_c1_fp32'] * 100:+.1f}%; identical greedy texts "
        + ", ".join(f"{k} {v}" for k, v in results["texts_identical_in_process_vs_triton"].items()))
    say(f"streaming first token / full response (p50): {r['stream_first_token_over_full_response_p50']:.3f}")
    env = results["environment"]
    say(f"environment: {env['cpu_count']} CPUs, ctranslate2 {env['ctranslate2']}, Triton {env['triton']}, "
        f"load average {env['load_average_before']} -> {env['load_average_after']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--requests", type=int, default=8, help="requests per concurrency-1 cell (<= 16)")
    parser.add_argument("--batch-requests", type=int, default=16, help="requests per concurrency-4/8 cell")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per concurrency-4/8 comparison")
    parser.add_argument("--json", type=Path, default=None, help="where to write the results (default: reports dir)")
    args = parser.parse_args()
    args.requests = max(2, min(args.requests, len(PROMPTS)))

    import ctranslate2

    settings = Settings()
    if not models_ready(settings):
        say(f"models are not prepared in {settings.models_dir}; run `make models` first")
        return 2
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="agency-bench-inference-") as tmp:
        templates = Path(tmp) / "templates"
        parameters = write_bench_templates(settings.model_repository, templates)
        bench_settings = settings.model_copy(
            update={
                "model_repository_dir": templates,
                "triton_home_dir": Path(tmp) / "home",
                "generator_compute_type": "int8",  # the streaming model's compute type
            }
        )
        server = TritonServer(
            bench_settings, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
            log_path=Path(tmp) / "triton.log",
        )
        say(f"starting tritonserver with {INT8}, {FP32}, {INT8_NOBATCH}, {STREAM_TEMPLATE} ...")
        try:
            server.start()
            say(f"  ready in {time.perf_counter() - started:.1f} s")
            triton_version = httpx.get(f"{server.http_url}/v2", timeout=5.0).json().get("version", "?")
            results = asyncio.run(measure(server, args, parameters, settings.models_dir))
        finally:
            server.stop()

    results["environment"] = {
        "cpu_count": os.cpu_count(), "ctranslate2": ctranslate2.__version__, "triton": triton_version,
        "python": platform.python_version(), "machine": platform.machine(),
        "load_average_before": load_before, "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    results["settings"] = {
        "max_tokens": args.max_tokens, "temperature": 0.0, "requests_c1": args.requests,
        "requests_c4_c8": args.batch_requests, "rounds_c4_c8": args.rounds, "response_cache": "disabled in the bench variants",
        "decoding": {k: parameters[k] for k in ("repetition_penalty", "min_tokens", "intra_threads") if k in parameters},
    }
    results["ratios"] = summarize(results)
    results["total_s"] = round(time.perf_counter() - started, 1)
    print_report(results)

    path = args.json or settings.reports_dir / f"inference-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    say(f"total {results['total_s']} s; results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
