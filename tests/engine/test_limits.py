"""check_context: a prompt plus the generation cap must fit in the model's positions (tiny Llama configs)."""

from types import SimpleNamespace

import pytest
from transformers import GPT2Config, LlamaConfig, LlamaForCausalLM

from engine.errors import TTScaleError
from engine.limits import check_context, max_positions
from engine.models import LoadedModel


def _config(positions=64, **kw):
    return LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                       num_key_value_heads=1, max_position_embeddings=positions, **kw)


@pytest.fixture(scope="module")
def tiny():
    return LlamaForCausalLM(_config()).eval()


@pytest.mark.parametrize("prompt, new", [(0, 0), (10, 54), (64, 0), (1, 63)])
def test_fits(tiny, prompt, new):
    assert check_context(tiny, prompt, new, "prompt 1 of 1") == 64


@pytest.mark.parametrize("prompt, new, message", [
    (12, 60, "prompt 1 of 3 has 12 tokens and the budget allows 60 more, but tiny-llama handles 64 positions; shorten the "
             "prompt or lower --max-thinking-tokens / --max-answer-tokens (at most 52 new tokens fit)"),
    (64, 1, "prompt 1 of 3 has 64 tokens, but tiny-llama handles 64 positions in all; shorten the prompt"),
    (12_034, 1_560, "prompt 1 of 3 has 12,034 tokens, but tiny-llama handles 64 positions in all; shorten the prompt"),
])
def test_refused_with_numbers(tiny, prompt, new, message):
    with pytest.raises(TTScaleError) as info:
        check_context(tiny, prompt, new, "prompt 1 of 3", name="tiny-llama")
    assert str(info.value) == message and "\n" not in message


def test_thousands_separators_and_custom_fix():
    with pytest.raises(TTScaleError) as info:
        check_context(_config(8192), 7_034, 1_560, "prompt 2 of 2", name="smollm2-135m", fix="--max-new-tokens")
    assert str(info.value) == ("prompt 2 of 2 has 7,034 tokens and the budget allows 1,560 more, but smollm2-135m handles 8,192 "
                               "positions; shorten the prompt or lower --max-new-tokens (at most 1,158 new tokens fit)")


@pytest.mark.parametrize("wrap", ["config", "model", "loaded"])
def test_accepts_config_model_or_loaded_model(tiny, wrap):
    obj = {"config": tiny.config, "model": tiny, "loaded": LoadedModel(model=tiny, tokenizer=None, name="my-model", source="x")}[wrap]
    assert max_positions(obj) == 64
    with pytest.raises(TTScaleError, match=r"^prompt 1 of 1 has 60 tokens and the budget allows 10 more, but (my-model|this llama model) "):
        check_context(obj, 60, 10, "prompt 1 of 1")


def test_other_position_names_and_unknown():
    assert max_positions(GPT2Config(n_positions=128, n_layer=1, n_embd=8, n_head=2)) == 128
    config = SimpleNamespace(model_type="custom", max_position_embeddings=None)  # a remote-code config that does not say
    assert max_positions(config) is None
    assert check_context(config, 10**9, 10**9, "prompt 1 of 1") is None  # unknown limit: nothing to check


@pytest.mark.parametrize("prompt, new", [(-1, 0), (0, -5), (1.5, 0), (True, 0)])
def test_bad_counts_are_programming_errors(tiny, prompt, new):
    with pytest.raises(ValueError, match="must be an integer >= 0"):
        check_context(tiny, prompt, new, "prompt 1 of 1")


def test_engine_refuses_a_prompt_beyond_the_context_before_generating(tokenizer, monkeypatch):
    from conftest import make_tiny_model

    from engine.engine import ThinkingEngine
    from engine.logits.budget import BudgetConfig

    model = make_tiny_model()
    model.config.max_position_embeddings = 96
    engine = ThinkingEngine(model, tokenizer, format="think-tags", template="plain")
    calls = []
    monkeypatch.setattr(engine, "_generate_batch", lambda *a, **k: calls.append(1) or [])
    with pytest.raises(TTScaleError, match=r"^prompt 2 of 2 has \d+ tokens and the budget allows 50 more, but .* handles 96 "
                                           r"positions; shorten the prompt or lower --max-thinking-tokens"):
        engine.iter_generate(["short", "word " * 60], BudgetConfig(max_thinking_tokens=32, max_answer_tokens=8))
    with pytest.raises(TTScaleError, match=r"lower --max-new-tokens \(at most \d+ new tokens fit\)"):
        engine.generate(["word " * 60], max_new_tokens=80)
    assert calls == []  # refused before any generate call
    assert list(engine.iter_generate(["short"], BudgetConfig(max_thinking_tokens=32, max_answer_tokens=8))) == [[]]


def test_cli_refuses_a_prompt_longer_than_the_model(smol_dir, capsys):
    from engine.cli.main import main

    code = main(["generate", "word " * 8300, "--model", smol_dir, "--max-thinking-tokens", "16"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("ttscale: error:") == 1 and "Traceback" not in err
    assert "prompt 1 of 1 has" in err and "handles 8,192 positions" in err
