"""Grader benchmarks: how well answer extraction and equivalence grade model text (no model, no torch)."""
