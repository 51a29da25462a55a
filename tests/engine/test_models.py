"""Model resolution and loading options; GPU-only behaviour skips without a GPU."""

import os

import pytest
import torch

from engine.errors import TTScaleError
from engine.models import load_model, pick_attention, pick_dtype, resolve_model

GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (flash-attn / bitsandbytes paths)")


def test_embedded_name_resolves_to_gguf():
    kind, path = resolve_model("smollm2-135m")
    assert kind == "gguf" and path.endswith(".gguf") and os.path.isfile(path)


def test_hub_id_shape():
    assert resolve_model("Qwen/Qwen2.5-1.5B-Instruct") == ("hub", "Qwen/Qwen2.5-1.5B-Instruct")


@pytest.mark.parametrize("spec, message", [("", "empty"), ("smollm9", "unknown model name"),
                                           ("./missing", "no such file"), ("/tmp/none.gguf", "no such GGUF")])
def test_bad_specs(spec, message):
    with pytest.raises(TTScaleError, match=message):
        resolve_model(spec)


def test_directory_without_config(tmp_path):
    with pytest.raises(TTScaleError, match="config.json"):
        resolve_model(str(tmp_path))


def test_local_directory_loads_fast(smol_dir):
    lm = load_model(smol_dir)
    assert lm.info["kind"] == "dir" and lm.info["dtype"] == "float32" and lm.info["attn_implementation"] == "sdpa"
    assert lm.tokenizer.padding_side == "left" and lm.tokenizer.pad_token_id is not None


def test_cpu_defaults_and_refusals():
    assert pick_dtype("auto", "cpu") == torch.float32
    assert pick_attention("auto", "cpu") == "sdpa"
    with pytest.raises(TTScaleError, match="unknown dtype"):
        pick_dtype("float8", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(TTScaleError, match="flash-attn"):
            pick_attention("flash_attention_2", "cpu")
        with pytest.raises(TTScaleError, match="needs a CUDA GPU"):
            load_model("smollm2-135m", quantization="4bit")


def test_hub_id_without_network_is_one_sentence(monkeypatch, tmp_path):
    import huggingface_hub.constants as hub_constants

    # The env var is read at import time; flip the flag itself so no network call (and no timeout) is attempted.
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(TTScaleError, match="could not load it"):
        load_model("nobody-here/not-a-model")


@GPU
def test_gpu_defaults():
    assert pick_dtype("auto", "cuda") in (torch.bfloat16, torch.float16)


@GPU
def test_4bit_loading_on_gpu(smol_dir):
    pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed")
    lm = load_model(smol_dir, quantization="4bit")
    assert lm.info["quantization"] == "4bit"
