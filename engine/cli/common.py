"""What every ``ttscale`` command shares: the prompt options, reading a prompts file, checking output locations and
holding a Ctrl-C back while a row is written. Torch-free (the flags in ``engine/cli/flags.py`` use it).

Command modules (``engine/cli/<command>.py``) import from here; nothing here imports a command. Flags come from
config dataclasses (``engine/cli/args.py``): :class:`PromptOptions` here, ``ModelConfig``, ``FormatConfig``,
``BudgetConfig``, ``SamplingConfig`` in the library.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from dataclasses import dataclass, field

from engine.errors import ConfigError, TTScaleError
from engine.jsonl import parse_line

PROMPT_FIELDS = ("prompt", "question", "problem")


@dataclass(frozen=True)
class PromptOptions:
    """The prompts of ``generate`` and ``search``: PROMPT arguments and/or a prompts file."""

    prompt: tuple[str, ...] = field(default=(), metadata={"help": "prompt text (several allowed)", "positional": True})
    prompts_file: str | None = field(default=None, metadata={
        "help": "file with one prompt per line, or JSONL with a prompt, question or problem field", "metavar": "FILE"})

    def __post_init__(self):
        if any(not isinstance(p, str) for p in self.prompt):
            raise ConfigError(f"`prompt` must be text, got {[p for p in self.prompt if not isinstance(p, str)][0]!r}")

    def prompts(self) -> list[str]:
        """PROMPT arguments, then the file's prompts. Refuses none at all and empty ones."""
        prompts = list(self.prompt)
        if self.prompts_file:
            prompts += read_prompts_file(self.prompts_file)
        if not prompts:
            raise TTScaleError("no prompt given; pass PROMPT arguments or --prompts-file F")
        if any(not p.strip() for p in prompts):
            raise TTScaleError("a prompt is empty; give non-empty text")
        return prompts


def read_prompts_file(path: str) -> list[str]:
    """Prompts from a file: one per line, or JSONL rows with a ``prompt``/``question``/``problem`` text field.

    Refuses a missing or unreadable file, a file with no prompts, JSONL rows without a prompt field and prompt fields
    that are not text (``null``, numbers, lists).
    """
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TTScaleError(f"--prompts-file {path}: cannot read it ({exc.__class__.__name__}: {exc})") from exc
    prompts = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            row = parse_line(line, path=path, number=n, what="--prompts-file")
            key = next((k for k in PROMPT_FIELDS if k in row), None)
            if key is None:
                raise TTScaleError(f"--prompts-file {path}, line {n}: a JSON row needs a prompt, question or problem field; it has {sorted(row)}")
            if not isinstance(row[key], str):
                raise TTScaleError(f"--prompts-file {path}, line {n}: the {key} field must be text, got {row[key]!r}")
            prompts.append(row[key])
        else:
            prompts.append(line)
    if not prompts:
        raise TTScaleError(f"--prompts-file {path}: the file holds no prompts")
    return prompts


def check_output_file(path: str, flag: str) -> None:
    """Check, before any model loads, that ``path`` can be written as the output file of ``flag``.

    Refuses, in one sentence naming the flag and the fix, a folder that does not exist, a path that is a directory
    and a location that cannot be written. Writability is proved, not guessed: an existing file is opened for append
    (nothing is written to it), a new one is created and removed again.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise TTScaleError(f"{flag} {path}: the folder {folder} does not exist; create it or give another path")
    if os.path.isdir(path):
        raise TTScaleError(f"{flag} {path}: is a directory; give a file path (e.g. {os.path.join(path, 'out.json')})")
    existed = os.path.exists(path)
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise TTScaleError(f"{flag} {path}: cannot write there ({exc.__class__.__name__}: {exc.strerror or exc}); "
                           "give a path in a writable folder") from exc
    if not existed:
        os.remove(path)


def check_output_dir(path: str, flag: str) -> None:
    """Check, before any model loads, that ``path`` can be used (created if missing) as the output folder of ``flag``.

    Refuses, in one sentence naming the flag and the fix, a parent folder that does not exist, a path that is a file
    and a folder that cannot be written. Writability is proved by creating a temporary file in the folder (or, when
    it does not exist yet, in its parent) and removing it; the folder itself is not created here.
    """
    target = os.path.abspath(path)
    if os.path.exists(target) and not os.path.isdir(target):
        raise TTScaleError(f"{flag} {path}: is a file, not a directory; give a directory path (it is created if missing)")
    where = target if os.path.isdir(target) else os.path.dirname(target)
    if not os.path.isdir(where):
        raise TTScaleError(f"{flag} {path}: the parent folder {where} does not exist; create it or give another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".ttscale-probe-", dir=where)
    except OSError as exc:
        raise TTScaleError(f"{flag} {path}: cannot write in {where} ({exc.__class__.__name__}: {exc.strerror or exc}); "
                           "give a directory in a writable place") from exc
    os.close(fd)
    os.remove(probe)


@contextlib.contextmanager
def interrupts_between_rows():
    """Hold a Ctrl-C (SIGINT) back while one row (its stdout line, its trace records, the tree) is written, then raise
    it: an interrupt lands between rows, never inside one. A Python-level handler, so it holds whichever thread the
    signal reaches; off the main thread (where handlers cannot be set) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *a: caught.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and callable(previous):
        previous(*caught[0])  # the default handler raises KeyboardInterrupt


def finished_rows(done: int) -> str:
    """Where an interrupted command's finished rows are, in words: ``the 2 finished rows are on stdout``."""
    if not done:
        return "no row was finished"
    return f"the {done} finished row{'' if done == 1 else 's'} {'is' if done == 1 else 'are'} on stdout"
