"""The exception types users see.

Every check on user input raises :class:`TTScaleError` with a sentence that names the argument, the rule, the
value and what to do instead. The CLI prints that sentence and exits with status 2; it never shows a traceback
for one of these.

A configuration dataclass (``BudgetConfig``, ``SearchConfig``, ``EvalConfig``, ...) raises :class:`ConfigError`,
whose sentence names the *field* at fault (``max_thinking_tokens must be >= 1``): the library speaks in fields.
The CLI renders the same error with the field's *flag* (``--max-thinking-tokens must be >= 1``).
"""

from __future__ import annotations

import re

_FIELD = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


class TTScaleError(ValueError):
    """Bad input or an unusable environment, explained in one sentence for the user."""


class ConfigError(TTScaleError):
    """A configuration value refused. Field names in ``template`` are written in backquotes (```max_steps```).

    ``str(err)`` shows bare field names; :meth:`render` shows each through ``names`` (field -> flag, for the CLI).
    ``field`` is the first field named: the one at fault.
    """

    def __init__(self, template: str):
        self.template = template
        found = _FIELD.findall(template)
        self.field = found[0] if found else None
        super().__init__(self.render())

    def render(self, names: dict[str, str] | None = None) -> str:
        """The sentence with every backquoted field replaced by ``names[field]`` (or the bare field name)."""
        names = names or {}
        return _FIELD.sub(lambda m: names.get(m.group(1), m.group(1)), self.template)
