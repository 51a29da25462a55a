"""Shared fixtures: a tiny random model for exact token checks, the real embedded model for end-to-end checks."""

import os
import socket
import sys

import pytest
import torch

from engine.cli.main import main
from engine.errors import TTScaleError
from engine.view.browser import require_browser

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS_DIR)
SHARED_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))  # fixtures only; the product never needs it


@pytest.fixture(scope="session")
def smol_dir():
    """The embedded SmolLM2 converted to safetensors (converted once per machine, ~30 s the first time)."""
    from engine.models import gguf_to_safetensors, resolve_model

    return gguf_to_safetensors(resolve_model("smollm2-135m")[1])


@pytest.fixture(scope="session")
def tokenizer(smol_dir):
    """The real SmolLM2 tokenizer (ChatML specials, 49152 ids), left padding."""
    from transformers import AutoTokenizer

    from engine.models import prepare_tokenizer

    return prepare_tokenizer(AutoTokenizer.from_pretrained(smol_dir))


def make_tiny_model(vocab_size=49152, seed=0, layers=2, hidden=64, init=0.02):
    """A randomly initialised 2-layer Llama on SmolLM2's vocabulary, fp32, eval mode."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
                      bos_token_id=1, eos_token_id=2, pad_token_id=2, initializer_range=init)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).eval()
    model.generation_config.pad_token_id = 2
    model.generation_config.eos_token_id = 2
    return model


@pytest.fixture(scope="session")
def tiny_model():
    return make_tiny_model()


@pytest.fixture(scope="session")
def smol():
    """The real embedded model, loaded once per test session."""
    from engine.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smol_dir):
    """``make_tiny_model(init=0.2)`` saved with SmolLM2's tokenizer files, for commands that take ``--model DIR``
    when the real model's text is not what the test checks (a generation costs milliseconds)."""
    import shutil

    path = str(tmp_path_factory.mktemp("tiny") / "model")
    make_tiny_model(init=0.2).save_pretrained(path)
    for name in os.listdir(smol_dir):
        if name.startswith(("tokenizer", "special_tokens", "vocab", "merges")):
            shutil.copy(os.path.join(smol_dir, name), path)
    return path


@pytest.fixture(scope="session")
def chat_model_dir(tiny_model_dir, smol_dir, tmp_path_factory):
    """``tiny_model_dir`` with SmolLM2's chat template too (training renders conversations; ``tiny_model_dir`` has
    the tokenizer files only)."""
    import shutil

    path = str(tmp_path_factory.mktemp("tinychat") / "model")
    shutil.copytree(tiny_model_dir, path)
    shutil.copy(os.path.join(smol_dir, "chat_template.jinja"), path)
    return path


def write_sft_data(path, examples: int) -> str:
    """A JSONL of ``examples`` tiny SFT records (question / thinking / boxed answer) at ``path``; returns the path."""
    import json

    rows = [{"question": f"What is {i}+{i}?", "thinking": f"{i} and {i} make {2 * i}.", "answer": f"$\\boxed{{{2 * i}}}$"}
            for i in range(examples)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """Exactness tests, not speed tests: one intra-op thread avoids OpenMP stalls when other jobs share the 2 cores."""
    yield from _single_thread()


@pytest.fixture(scope="module")
def one_thread_module():
    """:func:`one_thread` for a whole module (``pytestmark = pytest.mark.usefixtures("one_thread_module")``)."""
    yield from _single_thread()


def run_cli(capsys, *argv):
    """Run ``ttscale ARGV`` in-process: (exit status, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def launch_two() -> list[str]:
    """The ``accelerate launch`` prefix of two CPU processes (torchrun under --multi_gpu, gloo) on a free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port)]


def need_browser(what: str = "the browser tests"):
    """``(sync_playwright, chromium path)``; skips with the reason when Playwright or Chromium is missing, except in
    CI (``CI`` set), where it fails: a skipped browser check must not pass for a tested one."""
    try:
        return require_browser(what)
    except TTScaleError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run {what}: {exc}")
        pytest.skip(str(exc))
