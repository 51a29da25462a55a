"""Model resolution and loading options; GPU-only behaviour skips without a GPU."""

import os
import pathlib
import struct

import pytest
import torch

import engine.version as version_module
from engine import models
from engine.cli.main import main
from engine.errors import ConfigError, TTScaleError
from engine.model_config import ModelConfig
from engine.models import gguf_to_safetensors, load_model, pick_attention, pick_dtype, resolve_model
from engine.version import package_version

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


# ─── files that are not what they claim ─────────────────────────────────────────────────────────────────────

def _one_sentence(exc_info, *parts):
    text = str(exc_info.value)
    assert type(exc_info.value) is TTScaleError and "\n" not in text and text.count("; ") >= 1, text
    for part in parts:
        assert part in text, text
    return text


GGUF_HEADERS = [
    (b"", "is empty (0 bytes); re-download it"),
    (b"PK\x03\x04 this is a zip file, not a model", "is not a GGUF file (it does not start with the bytes GGUF); re-download it"),
    (b"GGUF\x03\x00", "is cut short (6 bytes, too few for a GGUF header); re-download it"),
    (b"GGUF" + struct.pack("<IQQ", 7, 1, 1), "declares GGUF version 7, and only versions 1, 2 and 3 exist; re-download it"),
    (b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 1), "has a broken header (1099511627776 tensors, 1 metadata keys); re-download it"),
]


@pytest.mark.parametrize("data, message", GGUF_HEADERS, ids=["empty", "zip", "short", "version", "counts"])
def test_bad_gguf_refused_before_loading(tmp_path, monkeypatch, data, message):
    monkeypatch.setenv("TTSCALE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "weights.gguf"
    path.write_bytes(data)
    with pytest.raises(TTScaleError) as info:
        resolve_model(str(path))
    _one_sentence(info, str(path), message)
    with pytest.raises(TTScaleError) as info:
        gguf_to_safetensors(str(path))
    _one_sentence(info, message)
    assert not (tmp_path / "cache").exists()  # refused before the cache was touched


def _truncated_real_gguf(path):
    with open(resolve_model("smollm2-135m")[1], "rb") as fh:
        path.write_bytes(fh.read(100_000))  # a real header and the start of its metadata, cut off mid-file


def _broken_body_gguf(path):
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + b"\xff" * 64)  # a valid header, then garbage


@pytest.mark.parametrize("build", [_truncated_real_gguf, _broken_body_gguf], ids=["truncated", "garbage-body"])
def test_failed_conversion_leaves_nothing_in_cache(tmp_path, monkeypatch, build):
    cache = tmp_path / "cache"
    monkeypatch.setenv("TTSCALE_CACHE", str(cache))
    path = tmp_path / "broken.gguf"
    build(path)
    with pytest.raises(TTScaleError) as info:
        gguf_to_safetensors(str(path))
    text = _one_sentence(info, f"the GGUF file {path} could not be converted (")
    assert text.endswith("); re-download it, or give a transformers model directory instead")
    assert not cache.exists() or list(cache.rglob("*")) == []  # no lock file, no .tmp directory, no partial model


def test_conversion_cache_is_keyed_by_content_and_keeps_no_lock(tmp_path, monkeypatch):
    """The same GGUF in two places (a reinstall, another venv) converts once; a changed file converts again; a
    successful conversion leaves no lock file; a file seen before is not hashed again (the memo answers)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("TTSCALE_CACHE", str(cache))
    converted = []

    def fake_convert(gguf_path, out):  # the cache logic only; real conversions are tested above and end to end
        converted.append(gguf_path)
        os.makedirs(out)
        (pathlib.Path(out) / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_convert_gguf", fake_convert)
    body = b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + bytes(range(256)) * 64
    first, second = tmp_path / "a" / "m.gguf", tmp_path / "b" / "m.gguf"
    for p in (first, second):
        p.parent.mkdir()
        p.write_bytes(body)
    one = gguf_to_safetensors(str(first))
    assert gguf_to_safetensors(str(second)) == one and converted == [str(first)]
    assert sorted(p.name for p in (cache / "models").iterdir()) == sorted([os.path.basename(one), "keys.json"])
    monkeypatch.setattr(models.hashlib, "sha256", lambda: pytest.fail("a file seen before was hashed again"))
    assert gguf_to_safetensors(str(first)) == one
    monkeypatch.undo()
    monkeypatch.setenv("TTSCALE_CACHE", str(cache))
    monkeypatch.setattr(models, "_convert_gguf", fake_convert)
    second.write_bytes(body + b"changed")
    assert gguf_to_safetensors(str(second)) != one and len(converted) == 2


def _write_model_dir(path, config="{}", weights=True, tokenizer=True):
    path.mkdir()
    (path / "config.json").write_text(config)
    if weights:
        (path / "model.safetensors").write_bytes(b"")
    if tokenizer:
        (path / "tokenizer.json").write_text("{}")
    return path


MODEL_DIRS = [
    (dict(weights=False), "the directory has a config.json but no weights (*.safetensors or *.bin); copy the missing files"),
    (dict(tokenizer=False), "the directory has a config.json but no tokenizer files (tokenizer.json, tokenizer.model or vocab.json); copy"),
    (dict(weights=False, tokenizer=False), "but no weights (*.safetensors or *.bin) and no tokenizer files"),
    (dict(config='{"model_type": "llama",'), "config.json is not valid JSON (Expecting property name enclosed in double quotes at line 1 column"),
    (dict(config="[1, 2]"), "config.json holds a JSON list, not an object of model settings; restore it"),
    (dict(config="\xff\xfe"), "config.json is not valid JSON ("),
]


@pytest.mark.parametrize("kwargs, message", MODEL_DIRS, ids=["no-weights", "no-tokenizer", "neither", "bad-json", "list", "bytes"])
def test_incomplete_model_dir_refused(tmp_path, kwargs, message):
    folder = _write_model_dir(tmp_path / "model", **kwargs)
    with pytest.raises(TTScaleError) as info:
        resolve_model(str(folder))
    _one_sentence(info, f"--model {folder}: ", message)


@pytest.mark.parametrize("make", ["gguf", "dir"])
def test_cli_refuses_broken_files_in_one_line(tmp_path, monkeypatch, capsys, make):
    monkeypatch.setenv("TTSCALE_CACHE", str(tmp_path / "cache"))
    if make == "gguf":
        target = tmp_path / "weights.gguf"
        target.write_bytes(b"not a model at all")
        expected = "is not a GGUF file"
    else:
        target = _write_model_dir(tmp_path / "model", weights=False)
        expected = "but no weights"
    assert main(["generate", "x", "--model", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ttscale: error: ") and err.count("\n") == 1 and expected in err, err
    assert "Traceback" not in err


# ─── values of the wrong kind ───────────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("kwargs, message", [
    (dict(model=""), "model is empty; give an embedded name"),
    (dict(model="   "), "model is empty; give an embedded name"),
    (dict(device="gpu"), "device 'gpu' is not a device; use auto, cpu, cuda, cuda:N (N a GPU index) or mps"),
    (dict(device="cuda:x"), "device 'cuda:x' is not a device; use auto"),
    (dict(device="cpu\n"), "device 'cpu\\n' is not a device; use auto"),
    (dict(dtype="float8"), "dtype 'float8' is not a dtype; use auto, float32, bfloat16 or float16"),
    (dict(attn="flash"), "attn 'flash' is not an attention implementation; use one of auto, sdpa, eager, flash_attention_2"),
])
def test_model_config_refuses_wrong_values(kwargs, message):
    with pytest.raises(ConfigError) as info:
        ModelConfig(**kwargs)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert info.value.field == next(iter(kwargs))


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_model_config_accepts_devices(device):
    assert ModelConfig(device=device, dtype="bf16", attn="eager").device == device  # a missing GPU is pick_device's to report


def test_cli_renders_model_config_fields_as_flags(capsys):
    assert main(["generate", "x", "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ttscale: error: --device 'gpu' is not a device;") and err.count("\n") == 1, err


# ─── --version ──────────────────────────────────────────────────────────────────────────────────────────────

def test_version(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out == f"ttscale {package_version()}\n" and package_version() not in ("", "unknown")


def test_version_falls_back_to_setup_py(monkeypatch):
    def not_installed(name):
        raise version_module.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(version_module.importlib.metadata, "version", not_installed)
    with open(os.path.join(os.path.dirname(version_module.__file__), "..", "setup.py"), encoding="utf-8") as fh:
        assert f'version="{package_version()}"' in fh.read()
