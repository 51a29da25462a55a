"""Thinking formats: where thinking starts, the end-of-thinking delimiter, and what follows it.

    s1          <|im_start|>think\\n {thinking} \\n<|im_start|>answer\\n {answer}        (REFERENCE §1)
    think-tags  <think>\\n {thinking} </think>\\n\\n {answer}                              (R1, Qwen3)
    auto        one of the two, chosen from the tokenizer and model name (:func:`choose_format`; the default)

Delimiters are strings; their token ids always come from the tokenizer (REFERENCE §1: hard-coded ids broke
SGLang on a new Qwen release). A delimiter may be several tokens long.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.errors import TTScaleError

# Tokens that close an assistant turn in the common chat templates; only those the tokenizer knows are used.
END_OF_TURN_CANDIDATES = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<｜end▁of▁sentence｜>")


@dataclass(frozen=True)
class ThinkingFormat:
    """The strings that frame thinking and answer.

    ``think_start`` is appended to the prompt to open thinking; ``think_end`` is the end-of-thinking delimiter;
    ``cap_prefix`` is forced before the delimiter when the thinking cap is hit; ``answer_sep`` is forced after it
    (then the final-answer string, e.g. ``Final Answer:``).
    """

    name: str
    think_start: str
    think_end: str
    answer_sep: str = "\n"
    cap_prefix: str = "\n"

    def __post_init__(self):
        if not self.think_end:
            raise TTScaleError(f"format {self.name!r}: the end-of-thinking delimiter is empty; give a non-empty string")


FORMATS = {
    "s1": ThinkingFormat("s1", think_start="<|im_start|>think\n", think_end="<|im_start|>answer", answer_sep="\n"),
    "think-tags": ThinkingFormat("think-tags", think_start="<think>\n", think_end="</think>", answer_sep="\n\n"),
}


# Model names or paths of s1 models (simplescaling/s1-32B, s1.1-7B, ...): s1 as a word, then a dash or a dot.
_S1_NAME = re.compile(r"(?:^|[^a-z0-9])s1(?:[.-]|$)|simplescaling/", re.IGNORECASE)


def choose_format(tokenizer, model_name: str | None = None) -> tuple[ThinkingFormat, str]:
    """The format ``auto`` means for this tokenizer and model, and why, in words.

    ``think-tags`` when the tokenizer has ``<think>``/``</think>`` as tokens or its chat template mentions
    ``<think>`` (Qwen3, DeepSeek-R1 distills); ``s1`` when ``model_name`` names an s1 model (``simplescaling/s1-32B``,
    ``s1.1-7B``) or the chat template opens ``<|im_start|>think``; otherwise ``think-tags`` (plain-text tags work on
    any instruct model).
    """
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):  # several named templates
        template = "\n".join(str(t) for t in template.values())
    if "<think>" in vocab and "</think>" in vocab:
        return FORMATS["think-tags"], "the tokenizer has <think> and </think> tokens"
    if "<think>" in template:
        return FORMATS["think-tags"], "the chat template uses <think>"
    if "<|im_start|>think" in template:
        return FORMATS["s1"], "the chat template opens <|im_start|>think"
    if model_name and _S1_NAME.search(str(model_name)):
        return FORMATS["s1"], f"{model_name} is an s1 model"
    return FORMATS["think-tags"], "the tokenizer has no thinking tokens; plain <think> tags"


def get_format(name: str = "s1", think_start: str | None = None, think_end: str | None = None) -> ThinkingFormat:
    """A named format, optionally with user-defined delimiter strings replacing its own.

    ``name`` may also be ``custom``, which requires both strings. Refuses unknown names; ``auto`` needs a tokenizer
    (:func:`choose_format`), so it is refused here.
    """
    if name == "auto":
        raise TTScaleError("--format auto is chosen from the tokenizer: use choose_format(tokenizer, model_name)")
    if name == "custom":
        if not think_start or not think_end:
            raise TTScaleError("--format custom needs both --think-start and --think-end")
        return ThinkingFormat("custom", think_start=think_start, think_end=think_end)
    if name not in FORMATS:
        raise TTScaleError(f"--format {name}: unknown format; use auto, one of {', '.join(FORMATS)} or custom")
    base = FORMATS[name]
    if think_start is None and think_end is None:
        return base
    return ThinkingFormat(f"{name}+custom", think_start=base.think_start if think_start is None else think_start,
                          think_end=base.think_end if think_end is None else think_end,
                          answer_sep=base.answer_sep, cap_prefix=base.cap_prefix)


def encode_text(tokenizer, text: str, what: str) -> tuple[int, ...]:
    """Token ids of ``text`` without special tokens added, refusing text the tokenizer cannot represent.

    ``what`` names the string in the error (e.g. ``"--think-end"``). A string is refused when it is empty,
    when it encodes to the unknown token, or when decoding its ids does not give the string back.
    """
    if not text:
        raise TTScaleError(f"{what} is empty")
    ids = tuple(tokenizer.encode(text, add_special_tokens=False))
    unk = getattr(tokenizer, "unk_token_id", None)
    if not ids or (unk is not None and unk in ids and (tokenizer.unk_token or "") not in text):
        raise TTScaleError(f"{what} {text!r} cannot be encoded by this tokenizer (it maps to the unknown token); choose another string")
    back = tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if back != text:
        raise TTScaleError(f"{what} {text!r} does not survive tokenisation (decodes to {back!r}); choose a string this tokenizer can represent")
    return ids


def end_of_turn_ids(tokenizer, model_eos: int | list[int] | None = None) -> tuple[int, ...]:
    """All ids that end a turn: the model's EOS ids plus any end-of-turn special token the tokenizer knows."""
    ids: list[int] = []
    for e in ([model_eos] if isinstance(model_eos, int) else list(model_eos or [])) + [tokenizer.eos_token_id]:
        if e is not None and e not in ids:
            ids.append(int(e))
    vocab = tokenizer.get_vocab()
    for tok in END_OF_TURN_CANDIDATES:
        if tok in vocab and vocab[tok] not in ids:
            ids.append(vocab[tok])
    return tuple(ids)


@dataclass(frozen=True)
class PromptStyle:
    """How prompts were rendered: ``chat`` (the tokenizer's chat template) or ``plain`` (no template)."""

    kind: str
    add_special_tokens: bool


def prompt_style(tokenizer, template: str = "auto") -> PromptStyle:
    """``auto`` uses the chat template when the tokenizer has one, else a plain prompt."""
    if template not in ("auto", "chat", "plain"):
        raise TTScaleError(f"--template {template}: use auto, chat or plain")
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    if template == "chat" and not has_chat:
        raise TTScaleError("--template chat: this tokenizer has no chat template; use --template plain")
    kind = "chat" if (template == "chat" or (template == "auto" and has_chat)) else "plain"
    # A rendered chat template already holds whatever BOS it wants; a plain prompt needs the tokenizer's.
    return PromptStyle(kind, add_special_tokens=(kind == "plain"))


def build_prompt(tokenizer, question: str, fmt: ThinkingFormat, style: PromptStyle, system: str | None = None) -> str:
    """The full prompt text, ending with the format's thinking-start string. Refuses an empty question."""
    if question is None or not str(question).strip():
        raise TTScaleError("a prompt is empty; give non-empty text")
    if style.kind == "chat":
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        text = (system + "\n\n" if system else "") + question.rstrip() + "\n"
    # Some templates (Qwen3) already open thinking; never open it twice.
    if fmt.think_start and not text.rstrip().endswith(fmt.think_start.strip()):
        text += fmt.think_start
    return text


@dataclass(frozen=True)
class FormatConfig:
    """How prompts are rendered and where thinking starts and ends: the format flags of every command."""

    format: str = field(default="auto", metadata={"help": "auto (chosen from the tokenizer and model name), s1 (<|im_start|>think / "
                                                          "<|im_start|>answer), think-tags (<think> / </think>) or custom"})
    think_start: str | None = field(default=None, metadata={"help": "string that opens thinking (overrides the format's)"})
    think_end: str | None = field(default=None, metadata={"help": "end-of-thinking delimiter (overrides the format's)"})
    template: str = field(default="auto", metadata={"help": "prompt style: chat template or plain text", "choices": ["auto", "chat", "plain"]})
    system: str | None = field(default=None, metadata={"help": "system message for chat templates"})

    def thinking_format(self, tokenizer=None, model_name: str | None = None) -> ThinkingFormat:
        """The :class:`ThinkingFormat` these settings name (see :func:`get_format` for what is refused); ``auto``
        is chosen from ``tokenizer`` (:func:`choose_format`). Without a tokenizer, ``auto`` only checks the
        override strings and returns the think-tags format as a stand-in."""
        return self.choose(tokenizer, model_name)[0]

    def choose(self, tokenizer=None, model_name: str | None = None) -> tuple[ThinkingFormat, str | None]:
        """The format and, for ``auto``, why it was chosen (None otherwise)."""
        if self.format != "auto":
            return get_format(self.format, self.think_start, self.think_end), None
        if tokenizer is None:
            base, why = FORMATS["think-tags"], None
        else:
            base, why = choose_format(tokenizer, model_name)
        return get_format(base.name, self.think_start, self.think_end), why
