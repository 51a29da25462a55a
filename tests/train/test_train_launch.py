"""The accelerate configs of ``train/accelerate/`` and ``train.launch``: every YAML loads and launches the way its
comments say, two DDP processes on CPU (gloo) train exactly like one process with the same global batch, and FSDP
is refused on a machine without CUDA through the real ``accelerate launch --config_file train/accelerate/fsdp.yaml``
path (accelerate would silently run DDP there); with two or more GPUs the FSDP config trains for real."""

import importlib.util
import json
import math
import os
import socket
import subprocess
import sys

import pytest
import torch
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DistributedType
from accelerate.utils.launch import prepare_multi_gpu_env, prepare_simple_launcher_cmd_env
from conftest import REPO, write_sft_data

from engine.errors import TTScaleError
from train.config import SFTOptions
from train.launch import CONFIGS, Launch, check_launch, config_path, read_launch
from train.sft import LOG_NAME, train_sft

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
# 8 examples, global batch 4, 2 steps: one epoch; with 2 processes each rank runs 2 micro-batches of 1 per step.
TRAIN = ["--max-length", "128", "--global-batch", "4", "--max-steps", "2", "--learning-rate", "1e-3", "--warmup-ratio", "0",
         "--no-gradient-checkpointing"]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return write_sft_data(tmp_path_factory.mktemp("launchdata") / "train.jsonl", 8)


def _port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def launch(config: str, *extra: str) -> list[str]:
    """``accelerate launch --config_file train/accelerate/CONFIG.yaml EXTRA -m engine.cli`` on a free port."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config_path(config), *extra,
            "--main_process_port", _port(), "-m", "engine.cli"]


def _resolved(config: str, *extra: str):
    """The arguments ``accelerate launch --config_file CONFIG EXTRA script.py`` runs with, after it merged the file."""
    args = launch_command_parser().parse_args(["--config_file", config_path(config), *extra, "script.py"])
    return _validate_launch_command(args)[0]


def _weights(path: str) -> dict:
    from safetensors.torch import load_file  # deferred: only the weight comparison reads safetensors

    return load_file(os.path.join(path, "model.safetensors"))


def _log(path: str) -> list[dict]:
    with open(os.path.join(path, LOG_NAME), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# ---- the configs ---------------------------------------------------------------------------------------------------

def test_every_shipped_config_loads_with_accelerates_own_loader():
    """``load_config_from_file`` (what ``accelerate launch --config_file`` calls) reads each YAML into a
    ``ClusterConfig``; it rejects unknown top-level keys but not unknown ``fsdp_config`` keys, so those are checked
    against the launcher's own ``--fsdp_*`` options."""
    configs = {name: load_config_from_file(config_path(name)) for name in CONFIGS}
    assert all(isinstance(c, ClusterConfig) for c in configs.values())
    assert {n: (c.distributed_type, c.num_processes) for n, c in configs.items()} == {
        "single": (DistributedType.NO, 1), "ddp": (DistributedType.MULTI_GPU, 2), "fsdp": (DistributedType.FSDP, 2)}
    assert {c.mixed_precision for c in configs.values()} == {"no"}  # precision is train sft's --dtype, not the launcher's
    fsdp = configs["fsdp"].fsdp_config
    options = {a.dest for a in launch_command_parser()._actions}
    assert sorted(k for k in fsdp if k not in options) == []
    assert (fsdp["fsdp_version"], fsdp["fsdp_reshard_after_forward"], fsdp["fsdp_auto_wrap_policy"]) == (2, True, "TRANSFORMER_BASED_WRAP")
    assert fsdp["fsdp_state_dict_type"] == "SHARDED_STATE_DICT" and fsdp["fsdp_activation_checkpointing"] is False
    assert "fsdp_transformer_layer_cls_to_wrap" not in fsdp  # accelerate falls back to the model's _no_split_modules
    with pytest.raises(TTScaleError, match="'zero3' is not shipped"):
        config_path("zero3")


def test_accelerate_launch_resolves_each_config_and_the_env_it_sets_reads_back():
    """The arguments ``accelerate launch --config_file X.yaml`` resolves, and the environment its launcher gives the
    training processes (accelerate's own ``prepare_*_env``), read back by :func:`train.launch.read_launch`."""
    single, ddp, fsdp = _resolved("single"), _resolved("ddp"), _resolved("fsdp")
    assert (single.num_processes, single.multi_gpu, single.use_fsdp) == (1, False, False)
    assert (ddp.num_processes, ddp.multi_gpu, ddp.use_fsdp) == (2, True, False)
    assert (fsdp.num_processes, fsdp.use_fsdp, fsdp.fsdp_version) == (2, True, 2)
    assert _resolved("ddp", "--num_processes", "8").num_processes == 8  # the comment's override
    rank1 = {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "RANK": "1"}  # what torchrun adds for each process
    assert read_launch(prepare_simple_launcher_cmd_env(single)[1]) == Launch()
    assert read_launch({**prepare_multi_gpu_env(ddp), **rank1}) == Launch(processes=2, local_processes=2, distributed="ddp")
    assert read_launch({**prepare_multi_gpu_env(fsdp), **rank1}) == Launch(
        processes=2, local_processes=2, distributed="fsdp", fsdp_version=2, fsdp_state_dict_type="SHARDED_STATE_DICT")
    bf16 = _resolved("single", "--mixed_precision", "bf16")
    assert read_launch(prepare_simple_launcher_cmd_env(bf16)[1]).mixed_precision == "bf16"


# ---- the refusals --------------------------------------------------------------------------------------------------

def test_check_launch_refuses_what_this_machine_cannot_run():
    options = SFTOptions(model="m", data="d", output_dir="o")
    fsdp = {"WORLD_SIZE": "2", "ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}
    assert check_launch(options, fsdp, cuda_devices=2).distributed == "fsdp"
    assert check_launch(options, {"WORLD_SIZE": "2"}, cuda_devices=0).distributed == "ddp"
    assert check_launch(options, {}, cuda_devices=0) == check_launch(options, {}, cuda_devices=1) == Launch()
    assert check_launch(options, {"ACCELERATE_MIXED_PRECISION": "bf16"}, cuda_devices=1).mixed_precision == "bf16"
    refused = [
        (options, fsdp, 0, r"asked for FSDP, which accelerate runs only on CUDA GPUs .* use --config_file train/accelerate/ddp.yaml"),
        (options, {**fsdp, "FSDP_ACTIVATION_CHECKPOINTING": "true"}, 2, "cannot both be on; pass --no-gradient-checkpointing"),
        (SFTOptions(model="m", data="d", output_dir="o", lora=True), fsdp, 2, "--lora under FSDP is not supported"),
        (options, {"ACCELERATE_USE_DEEPSPEED": "true"}, 1, "DeepSpeed, which is not installed"),
        (options, {"ACCELERATE_MIXED_PRECISION": "bf16"}, 0, "bf16 mixed precision, which needs a GPU"),
        (options, {"ACCELERATE_MIXED_PRECISION": "fp16"}, 1, "fp16 mixed precision, which train sft does not use"),
        (SFTOptions(model="m", data="d", output_dir="o", dtype="float32"), {"ACCELERATE_MIXED_PRECISION": "bf16"}, 1,
         "but --dtype is float32"),
        (options, {"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "4"}, 2, "4 processes on a machine with 2 CUDA GPU"),
        (options, {}, 4, r"one process sees 4 CUDA GPUs, which the Trainer would drive through nn.DataParallel"),
    ]
    for opts, env, gpus, message in refused:
        if "DeepSpeed" in message and importlib.util.find_spec("deepspeed"):  # installed: nothing to refuse
            continue
        with pytest.raises(TTScaleError, match=message):
            check_launch(opts, env, cuda_devices=gpus)
    fine = SFTOptions(model="m", data="d", output_dir="o", gradient_checkpointing=False)
    assert check_launch(fine, {**fsdp, "FSDP_ACTIVATION_CHECKPOINTING": "true"}, cuda_devices=2).fsdp_activation_checkpointing


@pytest.mark.skipif(torch.cuda.is_available(), reason="what accelerate does with FSDP on a machine without CUDA")
def test_accelerate_still_drops_fsdp_on_cpu():
    """The reason for the refusal, kept honest: with the FSDP variables set and the Trainer's ``cpu=True``, accelerate's
    state is MULTI_CPU and ``prepare`` wraps in DDP. If a future accelerate shards on CPU, this fails: lift the refusal."""
    code = ("import torch; from accelerate import Accelerator; a = Accelerator(cpu=True); "
            "print(a.distributed_type, type(a.prepare(torch.nn.Linear(2, 2))).__name__)")
    env = {**ENV, "ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
           "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": _port()}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["DistributedType.MULTI_CPU", "DistributedDataParallel"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_fsdp_is_refused_on_cpu_through_accelerate_launch(chat_model_dir, data_file, tmp_path):
    """``accelerate launch --config_file train/accelerate/fsdp.yaml`` on this machine: each rank says why in one
    sentence before any model loads, and nothing is written."""
    out = str(tmp_path / "fsdp")
    cmd = launch("fsdp", "--num_processes", "2") + ["train", "sft", "--model", chat_model_dir, "--data", data_file,
                                                    "--output-dir", out, *TRAIN]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.count("ttscale: error: accelerate launch asked for FSDP, which accelerate runs only on CUDA GPUs") == 2, proc.stderr[-3000:]
    assert not os.path.exists(out)


@pytest.mark.skipif(torch.cuda.is_available(), reason="bf16 mixed precision is refused only without a GPU")
def test_single_config_with_bf16_is_refused_on_cpu(chat_model_dir, data_file, tmp_path):
    """``single.yaml`` launches one process; asking it for bf16 on CPU (which the Trainer would otherwise run as CPU
    autocast, against train sft's fp32) is one sentence."""
    out = str(tmp_path / "bf16")
    cmd = launch("single", "--mixed_precision", "bf16") + ["train", "sft", "--model", chat_model_dir, "--data", data_file,
                                                           "--output-dir", out, *TRAIN]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0  # the CLI exits 2; accelerate's one-process launcher turns that into its own 1
    assert "ttscale: error: accelerate launch asked for bf16 mixed precision, which needs a GPU" in proc.stderr, proc.stderr[-3000:]
    assert not os.path.exists(out)


# ---- two processes -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def one_process(chat_model_dir, data_file, tmp_path_factory, one_thread_module):
    """The reference: the same run in one process (accumulation 4 instead of 2 x 2 processes)."""
    out = str(tmp_path_factory.mktemp("one") / "sft")
    report = train_sft(SFTOptions(model=chat_model_dir, data=data_file, output_dir=out, max_length=128, global_batch=4,
                                  max_steps=2, learning_rate=1e-3, warmup_ratio=0.0, gradient_checkpointing=False),
                       progress=False)
    assert (report["accumulation"], report["processes"]) == (4, 1)
    return out


def test_two_ddp_processes_train_exactly_like_one(chat_model_dir, data_file, one_process, tmp_path):
    """``accelerate launch --config_file train/accelerate/ddp.yaml`` with 2 CPU processes (gloo). The Trainer's
    sampler draws one permutation from ``data_seed`` on every rank and accelerate deals its batches round-robin, so
    each optimizer step sees the same 4 examples as the one-process run; the loss is summed over every rank's
    assistant tokens and divided by their global count, and DDP averages gradients: the same update, up to float
    rounding. One epoch after 2 steps means both ranks consumed data."""
    out = str(tmp_path / "two")
    cmd = launch("ddp", "--num_processes", "2") + ["train", "sft", "--model", chat_model_dir, "--data", data_file,
                                                   "--output-dir", out, *TRAIN]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("ttscale: trained 2 steps on 8 examples") == 2  # each rank finished
    two, one = _log(out), _log(one_process)
    assert [(r["step"], r["epoch"]) for r in two] == [(r["step"], r["epoch"]) for r in one] == [(1, 0.5), (2, 1.0)]
    assert all(math.isfinite(r["loss"]) for r in two)
    assert [r["loss"] for r in two] == pytest.approx([r["loss"] for r in one], rel=1e-5)
    assert [r["grad_norm"] for r in two] == pytest.approx([r["grad_norm"] for r in one], rel=1e-4)
    a, b, start = _weights(one_process), _weights(out), _weights(chat_model_dir)
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    assert max((a[k] - start[k]).abs().max().item() for k in a) > 1e-4  # the runs moved the weights: not a vacuous match
    from transformers import AutoModelForCausalLM  # deferred: as torch elsewhere

    assert AutoModelForCausalLM.from_pretrained(out).num_parameters() > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="lifts accelerate's CPU gate; on GPUs the next test runs FSDP for real")
def test_fsdp_config_trains_on_cpu_once_accelerates_gate_is_lifted(chat_model_dir, data_file, one_process, tmp_path):
    """fsdp.yaml through accelerate's real FSDP2 preparation and the Trainer, on CPU over gloo, with only accelerate's
    GPU-only gate lifted (``fsdp_cpu_runner.py``): the decoder layers shard, the run matches one process, and the
    final directory must hold a full safetensors model."""
    out = str(tmp_path / "fsdp")
    runner = os.path.join(REPO, "tests", "train", "fsdp_cpu_runner.py")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config_path("fsdp"), "--num_processes", "2",
           "--main_process_port", _port(), runner, "train", "sft", "--model", chat_model_dir, "--data", data_file,
           "--output-dir", out, *TRAIN]
    env = {**ENV, "PYTHONPATH": os.pathsep.join([REPO, ENV.get("PYTHONPATH", "")])}  # a script path: put this checkout first
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("fsdp_cpu_runner: saving FSDPLlamaForCausalLM") == 2  # both ranks trained a sharded model
    two, one = _log(out), _log(one_process)
    assert [r["loss"] for r in two] == pytest.approx([r["loss"] for r in one], rel=1e-5)
    a, b = _weights(one_process), _weights(out)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5  # b also holds the tied lm_head.weight


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="FSDP shards over >= 2 CUDA GPUs; this machine has fewer")
def test_fsdp_config_trains_on_two_gpus(chat_model_dir, data_file, one_process, tmp_path):
    """``fsdp.yaml`` for real: 2 GPU processes, the decoder layers sharded, a full safetensors model at the end that
    loads and is close to the one-process CPU run (bf16 autocast on GPU, so close rather than equal)."""
    out = str(tmp_path / "fsdp")
    cmd = launch("fsdp", "--num_processes", "2") + ["train", "sft", "--model", chat_model_dir, "--data", data_file,
                                                    "--output-dir", out, *TRAIN]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _log(out)
    assert [(r["step"], r["epoch"]) for r in rows] == [(1, 0.5), (2, 1.0)] and all(math.isfinite(r["loss"]) for r in rows)
    a, b = _weights(one_process), _weights(out)
    assert a.keys() == b.keys() and max((a[k] - b[k].float()).abs().max().item() for k in a) < 1e-2
    from transformers import AutoModelForCausalLM  # deferred: as torch elsewhere

    assert AutoModelForCausalLM.from_pretrained(out).num_parameters() > 0
