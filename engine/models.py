"""Finding and loading models: embedded short names, GGUF files, local directories and hub ids.

    --model smollm2-135m          embedded model shipped by a pip package (REFERENCE §7)
    --model ./my-model            a local directory with config.json
    --model ./weights.gguf        a GGUF file (converted once into a safetensors cache)
    --model Qwen/Qwen2.5-1.5B     a hub id (downloaded by transformers on the user's machine)

GGUF loading dequantises every tensor (~25 s for SmolLM2); we do it once and save a safetensors copy under
``$TTSCALE_CACHE`` (default ``~/.cache/ttscale``) so later loads take about a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import struct
from dataclasses import dataclass, field

import torch
from filelock import FileLock
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from engine.errors import TTScaleError
from engine.model_config import ATTENTION, DEFAULT_MODEL, EMBEDDED_MODELS, ModelConfig

log = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass
class LoadedModel:
    """A model with its tokenizer and a record of how it was loaded (shown to the user)."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    source: str
    info: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def cache_root() -> str:
    """Directory for converted models: ``$TTSCALE_CACHE`` or ``~/.cache/ttscale``."""
    return os.environ.get("TTSCALE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ttscale")


def _embedded_gguf(name: str) -> str:
    spec = EMBEDDED_MODELS[name]
    found = importlib.util.find_spec(spec.package)
    if found is None or found.origin is None:
        raise TTScaleError(f"--model {name} needs the package '{spec.package}', which is not installed; run: {spec.install}")
    if spec.assemble:
        # Importing the package is safe here: assemble() writes the GGUF under ~/.cache and returns its path.
        module = importlib.import_module(spec.package)
        return str(module.assemble())
    path = os.path.join(os.path.dirname(found.origin), spec.filename)
    if not os.path.isfile(path):
        raise TTScaleError(f"--model {name}: the package '{spec.package}' has no file {spec.filename}; reinstall it with: {spec.install}")
    return path


GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (1, 2, 3)
_GGUF_MAX_COUNT = 1 << 24  # no real GGUF has 16 million tensors or metadata keys; a larger count is a broken header
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model")


def check_gguf(path: str) -> None:
    """Sniff a ``.gguf`` file's header before anything hands it to transformers.

    Refuses (one sentence naming the file and the fix) an empty file, a file that does not start with the GGUF
    magic bytes, a header cut short, an unknown GGUF version, and tensor or metadata counts no real file has.
    What the header cannot show (a body cut short or garbled) is caught by :func:`gguf_to_safetensors`.
    """
    fix = "re-download it or give another model"
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
    except OSError as exc:
        raise TTScaleError(f"the GGUF file {path} cannot be read ({exc.strerror or exc}); check its permissions or give another model") from exc
    if not head:
        raise TTScaleError(f"the GGUF file {path} is empty (0 bytes); {fix}")
    if head[:4] != GGUF_MAGIC:
        raise TTScaleError(f"the file {path} is not a GGUF file (it does not start with the bytes GGUF); {fix}")
    if len(head) < 8:
        raise TTScaleError(f"the GGUF file {path} is cut short ({len(head)} bytes, too few for a GGUF header); {fix}")
    version = struct.unpack("<I", head[4:8])[0]
    if version not in GGUF_VERSIONS:
        raise TTScaleError(f"the GGUF file {path} declares GGUF version {version}, and only versions 1, 2 and 3 exist; {fix}")
    need = 16 if version == 1 else 24
    if len(head) < need:
        raise TTScaleError(f"the GGUF file {path} is cut short ({len(head)} bytes, too few for a GGUF header); {fix}")
    fmt = "<II" if version == 1 else "<QQ"
    tensors, keys = struct.unpack(fmt, head[8:need])
    if tensors > _GGUF_MAX_COUNT or keys > _GGUF_MAX_COUNT:
        raise TTScaleError(f"the GGUF file {path} has a broken header ({tensors} tensors, {keys} metadata keys); {fix}")


def check_model_dir(path: str, spec: str | None = None) -> None:
    """Check that a local directory is a complete transformers model before loading it.

    Refuses a directory without ``config.json``, a ``config.json`` that is not a JSON object, and a directory
    without weights (``*.safetensors``, ``*.bin``) or tokenizer files (``tokenizer.json``, ``tokenizer.model``,
    ``vocab.json``, ...), each in one sentence naming the directory and what is missing.
    """
    name = spec or path
    config = os.path.join(path, "config.json")
    if not os.path.isfile(config):
        raise TTScaleError(f"--model {name}: the directory has no config.json, so it is not a transformers model directory")
    try:
        with open(config, encoding="utf-8") as fh:
            parsed = json.load(fh)
    except json.JSONDecodeError as exc:
        raise TTScaleError(f"--model {name}: {config} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                           "restore it from the model's source") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise TTScaleError(f"--model {name}: {config} cannot be read as UTF-8 JSON; restore it from the model's source") from exc
    if not isinstance(parsed, dict):
        raise TTScaleError(f"--model {name}: {config} holds a JSON {type(parsed).__name__}, not an object of model settings; "
                           "restore it from the model's source")
    files = os.listdir(path)
    missing = []
    if not any(f.endswith(_WEIGHT_SUFFIXES) for f in files):
        missing.append("weights (*.safetensors or *.bin)")
    if not any(f in _TOKENIZER_FILES or f.endswith(".tiktoken") for f in files):
        missing.append("tokenizer files (tokenizer.json, tokenizer.model or vocab.json)")
    if missing:
        raise TTScaleError(f"--model {name}: the directory has a config.json but no {' and no '.join(missing)}; "
                           "copy the missing files from the model's source (save_pretrained writes both)")


def resolve_model(spec: str) -> tuple[str, str]:
    """Classify a ``--model`` value as ``("gguf", path)``, ``("dir", path)`` or ``("hub", id)``.

    Refuses an empty value, a path that does not exist, a ``.gguf`` file that is not GGUF (:func:`check_gguf`),
    a directory that is not a complete model (:func:`check_model_dir`), and a bare name that is neither an
    embedded model nor shaped like a hub id (``owner/name``).
    """
    if not spec or not spec.strip():
        raise TTScaleError("--model is empty; give an embedded name (" + ", ".join(EMBEDDED_MODELS) + "), a local path or a hub id")
    spec = spec.strip()
    if spec in EMBEDDED_MODELS:
        embedded = _embedded_gguf(spec)
        check_gguf(embedded)
        return "gguf", embedded
    path = os.path.expanduser(spec)
    if path.endswith(".gguf"):
        if not os.path.isfile(path):
            raise TTScaleError(f"--model {spec}: no such GGUF file")
        check_gguf(path)
        return "gguf", os.path.abspath(path)
    if os.path.isdir(path):
        check_model_dir(path, spec)
        return "dir", os.path.abspath(path)
    if spec.startswith((".", "/", "~")) or os.sep in spec and not _HUB_ID.match(spec):
        raise TTScaleError(f"--model {spec}: no such file or directory")
    if _HUB_ID.match(spec):
        return "hub", spec
    raise TTScaleError(
        f"--model {spec}: unknown model name; use an embedded model ({', '.join(EMBEDDED_MODELS)}), "
        "a local directory, a .gguf file or a hub id like Qwen/Qwen2.5-1.5B-Instruct"
    )


def gguf_to_safetensors(gguf_path: str) -> str:
    """Convert a GGUF file once into a safetensors directory in the cache and return that directory.

    The cache key is a SHA-256 of the file's bytes (:func:`gguf_content_key`), so the same model installed in
    another place — a new virtual environment, a fresh install — reuses its conversion, and a changed file is
    converted again. Conversion happens under a file lock and into a temporary directory that is renamed at the
    end, so concurrent processes (``accelerate launch``) never see a half-written model; the lock is removed again.

    Refuses a file whose header is not GGUF (:func:`check_gguf`) and, in one sentence, any file the GGUF
    reader or transformers cannot convert (a body cut short, an unsupported architecture); a failed conversion
    leaves neither a lock file nor a partial directory in the cache.
    """
    check_gguf(gguf_path)
    models = os.path.join(cache_root(), "models")
    key = gguf_content_key(gguf_path)
    stem = os.path.basename(gguf_path)[: -len(".gguf")]
    target = os.path.join(models, f"{stem}-{key}")
    if os.path.isfile(os.path.join(target, "config.json")):
        _remember_key(gguf_path, key)
        return target
    os.makedirs(models, exist_ok=True)
    lock, tmp = target + ".lock", f"{target}.{os.getpid()}.tmp"
    try:
        with FileLock(lock):
            if not os.path.isfile(os.path.join(target, "config.json")):  # another process may have converted it meanwhile
                log.warning("converting %s to safetensors once (about 30 s); later loads read %s", os.path.basename(gguf_path), target)
                _convert_gguf(gguf_path, tmp)
                os.replace(tmp, target)
        _remove_quietly(lock)  # a process still waiting on it finds the finished model once it holds the lock
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_quietly(lock)
        try:
            os.rmdir(models)  # only when the failed conversion was all it would have held
        except OSError:
            pass
        raise
    _remember_key(gguf_path, key)
    return target


def _seen(gguf_path: str) -> str:
    """The memo key of a file as it is now: its absolute path, size and modification time."""
    st = os.stat(gguf_path)
    return f"{os.path.abspath(gguf_path)}|{st.st_size}|{st.st_mtime_ns}"


def _memo_path() -> str:
    return os.path.join(cache_root(), "models", "keys.json")


def _read_memo() -> dict:
    """The remembered content keys (``{path|size|mtime: key}``); an absent or unreadable memo is empty."""
    try:
        with open(_memo_path(), encoding="utf-8") as fh:
            memo = json.load(fh)
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def gguf_content_key(gguf_path: str) -> str:
    """The first 16 hex digits of the SHA-256 of a GGUF file's bytes: the name of its conversion in the cache.

    Hashing reads the whole file (about 0.25 s per 100 MB); a file already converted is looked up in the memo
    ``<cache>/models/keys.json`` by path, size and modification time instead, so it is not read again.
    """
    known = _read_memo().get(_seen(gguf_path))
    if isinstance(known, str):
        return known
    digest = hashlib.sha256()
    with open(gguf_path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()[:16]


def _remember_key(gguf_path: str, key: str) -> None:
    """Record a converted file's content key in the memo (atomically; entries of files now gone are dropped)."""
    seen = _seen(gguf_path)
    memo = _read_memo()
    if memo.get(seen) == key:
        return
    memo = {k: v for k, v in memo.items() if os.path.exists(k.rsplit("|", 2)[0])}
    memo[seen] = key
    tmp = f"{_memo_path()}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(memo, fh)
        os.replace(tmp, _memo_path())
    except OSError:  # a read-only cache still serves the model; the file is hashed again next time
        _remove_quietly(tmp)


def _remove_quietly(path: str) -> None:
    """Remove a file if it is there; a file already gone (another process removed it) is not an error."""
    try:
        os.remove(path)
    except OSError:
        pass


def _convert_gguf(gguf_path: str, out: str) -> None:
    """Dequantise ``gguf_path`` into a plain fp32 safetensors model with its tokenizer in ``out``.

    Any error from the GGUF reader or transformers is re-raised as one :class:`TTScaleError` sentence.
    """
    folder, name = os.path.split(gguf_path)
    shutil.rmtree(out, ignore_errors=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        # REFERENCE §5: dropping the GGUF quantizer makes save_pretrained write plain fp32 safetensors.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    except Exception as exc:  # the GGUF reader raises anything (ValueError, KeyError, IndexError, struct.error) on a bad body
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")[:200]
        raise TTScaleError(f"the GGUF file {gguf_path} could not be converted ({type(exc).__name__}: {reason}); "
                           "re-download it, or give a transformers model directory instead") from exc



def pick_device(device: str = "auto") -> str:
    """``auto`` means the first CUDA GPU when one is present, else the CPU; refuses ``cuda`` without a GPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TTScaleError(f"--device {device}: no CUDA GPU is visible to torch; use --device cpu")
    return device


def pick_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto`` means bf16 on a GPU that supports it (fp16 otherwise) and fp32 on the CPU."""
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in names:
        raise TTScaleError(f"--dtype {dtype}: unknown dtype; use auto, float32, bfloat16 or float16")
    return names[dtype]


def pick_attention(attn: str, device: str) -> str:
    """``auto`` means flash-attn 2 when it is installed and we run on a GPU, else SDPA."""
    if attn not in ATTENTION:
        raise TTScaleError(f"--attn {attn}: unknown attention implementation; use one of {', '.join(ATTENTION)}")
    has_flash = importlib.util.find_spec("flash_attn") is not None
    if attn == "auto":
        return "flash_attention_2" if has_flash and device.startswith("cuda") else "sdpa"
    if attn == "flash_attention_2" and not (has_flash and device.startswith("cuda")):
        raise TTScaleError("--attn flash_attention_2 needs a CUDA GPU and the flash-attn package (pip install 'ttscale[gpu]')")
    return attn


def _quantization_config(quantization: str | None):
    if quantization in (None, "", "none"):
        return None
    if quantization not in ("4bit", "8bit"):
        raise TTScaleError(f"--quantization {quantization}: use 4bit or 8bit")
    if not torch.cuda.is_available():
        raise TTScaleError(f"--quantization {quantization} uses bitsandbytes, which needs a CUDA GPU; none is visible, so load the model unquantised")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise TTScaleError(f"--quantization {quantization} needs the bitsandbytes package: pip install 'ttscale[gpu]'")

    if quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_type="nf4")
    return BitsAndBytesConfig(load_in_8bit=True)


def prepare_tokenizer(tokenizer):
    """Left padding for batched decoding, and a pad token (the EOS token) when the tokenizer has none."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    spec: str = DEFAULT_MODEL,
    *,
    dtype: str = "auto",
    device: str = "auto",
    device_map: str | dict | None = None,
    attn_implementation: str = "auto",
    quantization: str | None = None,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load a causal LM and its tokenizer from a ``--model`` value (see :func:`resolve_model`).

    ``device_map`` (e.g. ``"auto"``) shards the model over all visible GPUs through accelerate and overrides
    ``device``. ``quantization`` is ``4bit``/``8bit`` through bitsandbytes and is refused without a GPU.
    Remote code is never run unless ``trust_remote_code`` is set. Refuses unknown names, missing paths,
    unknown dtypes or attention implementations, and hub ids that cannot be fetched (each in one sentence).
    """
    kind, where = resolve_model(spec)
    quant = _quantization_config(quantization)
    dev = pick_device(device) if device_map is None else "cuda"
    torch_dtype = pick_dtype(dtype, dev)
    attn = pick_attention(attn_implementation, dev)
    path = gguf_to_safetensors(where) if kind == "gguf" else where
    kwargs = dict(dtype=torch_dtype, attn_implementation=attn, trust_remote_code=trust_remote_code)
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = device_map or "auto"
    elif device_map is not None:
        kwargs["device_map"] = device_map
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        hint = " (this machine may have no network: give a local directory or an embedded model)" if kind == "hub" else ""
        raise TTScaleError(f"--model {spec}: could not load it{hint}: {str(exc).splitlines()[0]}") from exc
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise TTScaleError(f"--model {spec} needs custom code from its repository; pass --trust-remote-code if you trust it") from exc
        raise
    if "device_map" not in kwargs:
        model.to(dev)
    model.eval()
    info = {"kind": kind, "path": path, "dtype": str(torch_dtype).replace("torch.", ""), "device": dev,
            "device_map": device_map, "attn_implementation": attn, "quantization": quantization}
    return LoadedModel(model=model, tokenizer=prepare_tokenizer(tokenizer), name=spec, source=where, info=info)


def load_from_config(config: ModelConfig) -> LoadedModel:
    """The model and tokenizer a :class:`~engine.model_config.ModelConfig` names (see :func:`load_model` for what is refused)."""
    return load_model(config.model, dtype=config.dtype, device=config.device, device_map=config.device_map,
                      attn_implementation=config.attn, quantization=config.quantization, trust_remote_code=config.trust_remote_code)
