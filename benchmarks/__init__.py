"""Benchmarks: ``data`` (problems: named datasets, local files, synthetic tasks), ``eval`` (the evaluation harness
behind ``ttscale eval``), ``speed`` (speed benchmarks behind ``ttscale bench``, each with its baseline) and ``grading``
(how well answer extraction grades model text, beside math-verify alone and s1's rule; no model)."""
