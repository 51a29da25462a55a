"""--format auto: choose_format picks s1 or think-tags from real tokenizer objects and the model name."""

import copy

import pytest

from engine.errors import TTScaleError
from engine.formats import FORMATS, FormatConfig, choose_format, get_format


def _with_template(tokenizer, template):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = template
    return tok


def test_smollm2_gets_plain_think_tags(tokenizer):
    fmt, why = choose_format(tokenizer, "smollm2-135m")
    assert fmt is FORMATS["think-tags"]
    assert why == "the tokenizer has no thinking tokens; plain <think> tags"


def test_thinking_tokens_give_think_tags(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.add_special_tokens({"additional_special_tokens": ["<think>", "</think>"]})
    fmt, why = choose_format(tok, "Qwen/Qwen3-0.6B")
    assert fmt.name == "think-tags" and "<think> and </think> tokens" in why


def test_template_mentioning_think_gives_think_tags(tokenizer):
    tok = _with_template(tokenizer, "{% for m in messages %}{{ m.content }}{% endfor %}<|im_start|>assistant\n<think>\n")
    fmt, why = choose_format(tok, "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")
    assert fmt.name == "think-tags" and "chat template" in why


def test_s1_template_gives_s1(tokenizer):
    tok = _with_template(tokenizer, "{% for m in messages %}{{ m.content }}{% endfor %}<|im_start|>think\n")
    fmt, why = choose_format(tok, "some/model")
    assert fmt is FORMATS["s1"] and "<|im_start|>think" in why


@pytest.mark.parametrize("name", ["simplescaling/s1-32B", "simplescaling/s1.1-7B", "/models/s1-32B", "s1.1-7B-Q4_K_M.gguf",
                                  "my/s1"])
def test_s1_names_give_s1(tokenizer, name):
    fmt, why = choose_format(tokenizer, name)
    assert fmt is FORMATS["s1"] and name in why


@pytest.mark.parametrize("name", ["smollm2-135m", "Qwen/Qwen2.5-1.5B-Instruct", "models1-x", "gemma3-270m", None])
def test_other_names_are_not_s1(tokenizer, name):
    assert choose_format(tokenizer, name)[0].name == "think-tags"


def test_format_config_defaults_to_auto_and_keeps_explicit_formats(tokenizer):
    assert FormatConfig().format == "auto"
    assert FormatConfig().choose(tokenizer, "smollm2-135m") == (FORMATS["think-tags"], choose_format(tokenizer)[1])
    assert FormatConfig(format="s1").choose(tokenizer, "smollm2-135m") == (FORMATS["s1"], None)
    custom = FormatConfig(think_end="</reason>").thinking_format(tokenizer, "smollm2-135m")
    assert custom.name == "think-tags+custom" and custom.think_end == "</reason>" and custom.think_start == "<think>\n"
    with pytest.raises(TTScaleError, match="choose_format"):
        get_format("auto")


def test_engine_auto_describes_its_choice(tiny_model, tokenizer):
    from engine.engine import ThinkingEngine

    engine = ThinkingEngine(tiny_model, tokenizer, format="auto")
    assert engine.format.name == "think-tags"
    assert engine.describe().startswith("format auto -> think-tags (the tokenizer has no thinking tokens; plain <think> tags)")
    assert ThinkingEngine(tiny_model, tokenizer, format="s1").describe().startswith("format s1: ")
