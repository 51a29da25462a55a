"""Benchmarks: ``data`` (problems: named datasets, local files, synthetic tasks), ``eval`` (the evaluation harness
behind ``ttscale eval``) and ``speed`` (speed benchmarks behind ``ttscale bench``, each with its baseline)."""
