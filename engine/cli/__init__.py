"""The ``ttscale`` command line: ``main.py`` registers one module per command; ``common.py`` holds shared flags."""
