"""The one exception type users see.

Every check on user input raises :class:`TTScaleError` with a sentence that names the argument, the rule, the
value and what to do instead. The CLI prints that sentence and exits with status 2; it never shows a traceback
for one of these.
"""


class TTScaleError(ValueError):
    """Bad input or an unusable environment, explained in one sentence for the user."""
