"""Text from a growing list of token ids, delta by delta, for streaming (torch-free).

Decoding one token at a time breaks characters that span tokens (a byte-level BPE splits "é" or an emoji over
several ids): :class:`Detokenizer` decodes a window from the last released id and releases text only once it
no longer ends in the replacement character, so the deltas concatenate to exactly ``tokenizer.decode(ids)``.

:class:`StopWatch` applies ``stop`` strings to the released text: it holds back the longest tail that could still
become a stop string and cuts the text where one appears (the stop string itself is not returned, as in OpenAI's API).
"""

from __future__ import annotations


class Detokenizer:
    """Incremental ``tokenizer.decode`` of the ids given to :meth:`add`; :meth:`add` returns the new text, maybe ""."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._prefix = 0   # ids[_prefix:_read] decode to text already released
        self._read = 0
        self.text = ""

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def add(self, token: int) -> str:
        """Append one id; the text it completes (held back while a character is still incomplete)."""
        self.ids.append(token)
        before = self._decode(self.ids[self._prefix:self._read])
        now = self._decode(self.ids[self._prefix:])
        if len(now) <= len(before) or now.endswith("\ufffd"):
            return ""
        delta = now[len(before):]
        self._prefix, self._read = self._read, len(self.ids)  # the window restarts at the last released id
        self.text += delta
        return delta

    def flush(self) -> str:
        """Whatever the full decode holds beyond the released text (an incomplete character at the very end)."""
        full = self._decode(self.ids)
        rest = full[len(self.text):] if full.startswith(self.text) else ""
        self.text += rest
        return rest


class StopWatch:
    """Releases text unless it may be the start of a stop string; reports the first stop string found."""

    def __init__(self, stops: tuple[str, ...]):
        self.stops = tuple(stops)
        self._hold = max((len(s) for s in stops), default=1) - 1
        self.seen = ""       # all text given so far
        self.released = 0    # characters of ``seen`` already returned
        self.stopped = False

    def feed(self, delta: str, final: bool = False) -> str:
        """Add ``delta``; return the text now safe to show. After a stop string, returns the text before it once and
        sets :attr:`stopped`; ``final`` releases everything held (the row ended)."""
        if self.stopped:
            return ""
        self.seen += delta
        if self.stops:
            at = min((i for i in (self.seen.find(s, max(0, self.released - self._hold)) for s in self.stops) if i >= 0),
                     default=-1)
            if at >= 0:
                self.stopped = True
                out, self.released = self.seen[self.released:at], at
                self.seen = self.seen[:at]
                return out
        end = len(self.seen) if final or not self.stops else max(self.released, len(self.seen) - self._hold)
        out, self.released = self.seen[self.released:end], end
        return out
