"""``python -m engine.cli``: the ``ttscale`` command (what ``accelerate launch -m engine.cli`` runs)."""

import sys

from engine.cli.main import main

sys.exit(main())
