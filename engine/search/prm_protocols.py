"""How each process reward model wants its input, and where it reads a score per step (REFERENCE §3).

    protocol       input text                                                  scored token          score
    rlhflow        chat: user = question + " " + step 1, assistant = "+",       last token before     P("+") over {"+","-"}
                   user = step 2, assistant = "+", ...                          each assistant "+"    (next-token logits)
    math-shepherd  question + " " + step 1 + " ки\\n" + step 2 + ... + " ки"      last token of " ки"   P("+") over {"+","-"}
    qwen-prm       system / user = question / assistant = steps joined and      each <extra_0>        softmax(2-way head)[1]
                   ended by <extra_0>

A protocol only renders text and says, per step, the character offset where its scored token ends; the PRM
(engine/search/prm.py) tokenises the whole text with the tokenizer itself and maps offsets to tokens, so the ids
are exactly the tokenizer's own full-text tokenisation (and the chat template's, where the protocol has one).

Math-Shepherd's tag: its Mistral tokenizer has " ки" as one token and reads the label at that token. Stand-in
tokenizers may split it (SmolLM2: " к" + "и"); we then read the score at the tag's *last* token, the position
whose next-token prediction is the label, which is the same rule for a one-token tag.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import TTScaleError

# A string no question or step contains; rendered in place of the assistant content to find where it lands.
_SLOT = "\u2060ttscale\u2060slot\u2060"
QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True)
class Rendered:
    """A protocol's input text for one candidate.

    ``ends[k]`` is the character offset where step k's scored token ends; ``steps_start`` is where the first
    step's text begins (everything before it depends only on the question and is shared between candidates).
    """

    text: str
    ends: list[int]
    steps_start: int
    add_special_tokens: bool


def _single_token(tokenizer, text: str, protocol: str) -> int:
    ids = tokenizer.encode(text, add_special_tokens=False)
    unk = getattr(tokenizer, "unk_token_id", None)
    if len(ids) != 1 or (unk is not None and ids[0] == unk):
        raise TTScaleError(
            f"PRM protocol {protocol}: the tokenizer encodes {text!r} as {len(ids)} token(s) {ids}, but the protocol needs it to be "
            "one known token; load the PRM this protocol was written for, or pick the protocol that matches this model")
    return ids[0]


def _after(text: str, question: str) -> int:
    """Offset just past the question in ``text`` (0 when a template altered it: then no prefix is shared)."""
    q = question.strip()
    at = text.find(q) if q else -1
    return at + len(q) if at >= 0 else 0


def _render_chat(tokenizer, messages: list[dict], protocol: str) -> tuple[str, list[int]]:
    """The chat template applied to ``messages``, and where each ``_SLOT`` placeholder landed (slots removed)."""
    if not getattr(tokenizer, "chat_template", None):
        raise TTScaleError(f"PRM protocol {protocol} needs a chat template, and this tokenizer has none; use a chat PRM or another protocol")
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    pieces = rendered.split(_SLOT)
    slots = sum(1 for m in messages if _SLOT in m["content"])
    if len(pieces) - 1 != slots:
        raise TTScaleError(f"PRM protocol {protocol}: the tokenizer's chat template does not copy message contents verbatim, so step positions cannot be found; use a PRM with a plain chat template")
    text, starts = pieces[0], []
    for piece in pieces[1:]:
        starts.append(len(text))
        text += piece
    return text, starts


class Protocol:
    """Base: ``render(question, steps)`` and what the head reads at each scored token.

    ``head`` is ``"lm"`` (next-token logits of ``label_ids`` = ("+", "-"), score = P(first)) or ``"classifier"``
    (a 2-way head, score = softmax[..., 1]). ``clean`` removes what a step may not contain (the protocol's own tags).
    """

    name = "base"
    head = "lm"
    tags: tuple[str, ...] = ()

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        if not getattr(tokenizer, "is_fast", False):
            raise TTScaleError(f"PRM protocol {self.name} needs a fast (Rust) tokenizer to map step offsets to tokens; this one is {type(tokenizer).__name__}")
        self.label_ids = (_single_token(tokenizer, "+", self.name), _single_token(tokenizer, "-", self.name)) if self.head == "lm" else ()

    def clean(self, step: str) -> str:
        """A step's text as the PRM sees it: surrounding whitespace (the ``\\n\\n`` separator) and protocol tags removed."""
        for tag in self.tags:
            step = step.replace(tag, "")
        return step.strip()

    def render(self, question: str, steps: list[str]) -> Rendered:  # pragma: no cover - abstract
        raise NotImplementedError


class RLHFlowProtocol(Protocol):
    """RLHFlow/Llama3.1-8B-PRM-*: one user turn per step (the first prefixed by the question), "+" answers each."""

    name = "rlhflow"

    def render(self, question, steps):
        messages = []
        for k, step in enumerate(steps):
            messages.append({"role": "user", "content": f"{question} {step}" if k == 0 else step})
            messages.append({"role": "assistant", "content": _SLOT})
        text, slots = _render_chat(self.tokenizer, messages, self.name)
        # The slot is where the assistant's "+" goes; the scored token is the one just before it.
        text_plus, offset, ends = "", 0, []
        for at in slots:
            text_plus += text[offset:at] + "+"
            ends.append(len(text_plus) - 1)
            offset = at
        text_plus += text[offset:]
        return Rendered(text_plus, ends, _after(text_plus, question), add_special_tokens=False)


class MathShepherdProtocol(Protocol):
    """peiyi9979/math-shepherd-mistral-7b-prm: ``question step1 ки\\nstep2 ки``, label read at each tag."""

    name = "math-shepherd"
    tag = " ки"
    tags = ("ки",)

    def __init__(self, tokenizer):
        super().__init__(tokenizer)
        probe = tokenizer.encode("1" + self.tag, add_special_tokens=False)
        unk = getattr(tokenizer, "unk_token_id", None)
        if (unk is not None and unk in probe) or "ки" not in tokenizer.decode(probe):
            raise TTScaleError(f"PRM protocol {self.name}: the tokenizer cannot represent the step tag {self.tag!r}; "
                               "load the Math-Shepherd PRM (or one trained with that tag) or pick the protocol that matches this model")
        self.tag_tokens = len(probe) - len(tokenizer.encode("1", add_special_tokens=False))  # 1 in Math-Shepherd, 2 in SmolLM2

    def render(self, question, steps):
        text, ends = f"{question} ", []
        steps_start = len(question)
        for k, step in enumerate(steps):
            text += ("\n" if k else "") + step + self.tag
            ends.append(len(text))
        return Rendered(text, ends, steps_start, add_special_tokens=True)


class QwenPRMProtocol(Protocol):
    """Qwen/Qwen2.5-Math-PRM-7B: steps joined by ``<extra_0>`` with one at the end, positive-class prob at each."""

    name = "qwen-prm"
    head = "classifier"
    sep = "<extra_0>"
    tags = ("<extra_0>",)

    def __init__(self, tokenizer, system: str = QWEN_PRM_SYSTEM):
        super().__init__(tokenizer)
        self.sep_id = _single_token(tokenizer, self.sep, self.name)
        self.system = system

    def render(self, question, steps):
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": question},
                    {"role": "assistant", "content": _SLOT}]
        text, (at,) = _render_chat(self.tokenizer, messages, self.name)
        body, ends = "", []
        for step in steps:
            body += step + self.sep
            ends.append(at + len(body))
        return Rendered(text[:at] + body + text[at:], ends, at, add_special_tokens=False)


PROTOCOLS = {p.name: p for p in (RLHFlowProtocol, MathShepherdProtocol, QwenPRMProtocol)}


def make_protocol(name: str, tokenizer) -> Protocol:
    """The protocol ``name`` bound to ``tokenizer``; refuses unknown names and tokenizers that lack its tokens."""
    if name not in PROTOCOLS:
        raise TTScaleError(f"PRM protocol {name!r} is unknown; use one of {', '.join(PROTOCOLS)} (or 'verifier' for a Python checker)")
    return PROTOCOLS[name](tokenizer)
