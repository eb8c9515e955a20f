"""The GPU model repository written by deploy/gpu/build_engines.py keeps the CPU repository's interface.

Runs without a GPU or TensorRT: only the repository-writing part of the script (--skip-build).
Same model names, tensor names, dtypes, dims and optionality as model_repository/ is what lets
agency.inference.TritonInference talk to either repository unchanged.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "deploy" / "gpu" / "build_engines.py"
CPU_REPOSITORY = REPO_ROOT / "model_repository"


def _load_script():
    spec = importlib.util.spec_from_file_location("build_engines", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


build_engines = _load_script()


def _interface(config_path: Path) -> dict:
    text = config_path.read_text()
    return {
        "name": re.search(r'(?m)^name:\s*"([^"]+)"', text).group(1),
        "max_batch_size": build_engines.parse_max_batch_size(text),
        "inputs": build_engines.parse_tensors(build_engines._bracketed_block(text, "input")),
        "outputs": build_engines.parse_tensors(build_engines._bracketed_block(text, "output")),
    }


@pytest.fixture(scope="module")
def gpu_repository(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("gpu") / "repository"
    # The CLI itself, as an operator runs it; --skip-build needs neither TensorRT-LLM nor torch.
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--output", str(output), "--quantization", "fp8", "--skip-build"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    return output


@pytest.mark.parametrize("model", ["content_generator", "embedder"])
def test_gpu_model_has_the_cpu_interface(gpu_repository: Path, model: str) -> None:
    gpu = _interface(gpu_repository / model / "config.pbtxt")
    cpu = _interface(CPU_REPOSITORY / model / "config.pbtxt")
    assert gpu == cpu
    assert gpu["inputs"] and gpu["outputs"]


@pytest.mark.parametrize("model", ["content_generator", "embedder"])
def test_gpu_model_runs_on_gpu_instances(gpu_repository: Path, model: str) -> None:
    text = (gpu_repository / model / "config.pbtxt").read_text()
    assert re.search(r"instance_group\s*\[\s*\{\s*kind:\s*KIND_GPU\s+count:\s*1\s+gpus:\s*\[\s*0\s*\]", text)
    assert "KIND_CPU" not in text
    assert "dynamic_batching" in text
    assert (gpu_repository / model / "1" / "model.py").is_file()


def test_generator_config_points_at_engine_and_drops_cpu_only_parameters(gpu_repository: Path) -> None:
    params = build_engines.parse_parameters((gpu_repository / "content_generator" / "config.pbtxt").read_text())
    cpu_params = build_engines.parse_parameters((CPU_REPOSITORY / "content_generator" / "config.pbtxt").read_text())
    assert params["engine_dir"] == "engine" and params["tokenizer_dir"] == "tokenizer"
    assert params["quantization"] == "fp8"
    assert "compute_type" not in params and "intra_threads" not in params
    # Generation behaviour (limits, sampling, system prompt) is carried over unchanged.
    for key, value in cpu_params.items():
        if key not in build_engines.CPU_ONLY_PARAMETERS:
            assert params[key] == value, key


@pytest.mark.parametrize("model", ["content_generator", "embedder"])
def test_gpu_model_py_reads_every_declared_input_and_writes_every_output(gpu_repository: Path, model: str) -> None:
    source = (gpu_repository / model / "1" / "model.py").read_text()
    interface = _interface(CPU_REPOSITORY / model / "config.pbtxt")
    for tensor in interface["inputs"]:
        assert f'get_input_tensor_by_name(request, "{tensor["name"]}")' in source, tensor["name"]
    for tensor in interface["outputs"]:
        assert f'pb_utils.Tensor("{tensor["name"]}"' in source, tensor["name"]


def test_interface_is_copied_not_retyped(tmp_path: Path) -> None:
    """A tensor added to the CPU config appears in the GPU config without touching the script."""
    cpu = tmp_path / "cpu"
    shutil.copytree(CPU_REPOSITORY, cpu, ignore=shutil.ignore_patterns("*.bin", "__pycache__"))
    config = cpu / "content_generator" / "config.pbtxt"
    text = config.read_text()
    block = build_engines._bracketed_block(text, "output")
    widened = block[:-1].rstrip() + ',\n  { name: "FINISH_REASON" data_type: TYPE_STRING dims: [ 1 ] }\n]'
    config.write_text(text.replace(text[text.index("output [") : text.index("]", text.index("output [")) + 1], widened))

    written = build_engines.write_repository(tmp_path / "gpu", cpu, build_engines.GpuOptions(quantization="int8_wo"))
    assert len(written) == 4
    outputs = _interface(tmp_path / "gpu" / "content_generator" / "config.pbtxt")["outputs"]
    assert outputs[-1] == {"name": "FINISH_REASON", "data_type": "TYPE_STRING", "dims": [1], "optional": False}


def test_mismatched_model_name_is_rejected(tmp_path: Path) -> None:
    cpu = tmp_path / "cpu"
    shutil.copytree(CPU_REPOSITORY, cpu, ignore=shutil.ignore_patterns("*.bin", "__pycache__"))
    config = cpu / "embedder" / "config.pbtxt"
    config.write_text(config.read_text().replace('name: "embedder"', 'name: "embedder_v2"', 1))
    with pytest.raises(ValueError, match="does not declare"):
        build_engines.write_repository(tmp_path / "gpu", cpu, build_engines.GpuOptions(quantization="fp16"))


def test_build_without_a_checkpoint_is_refused(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--output", str(tmp_path / "gpu")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode != 0
    assert "--checkpoint" in completed.stderr
