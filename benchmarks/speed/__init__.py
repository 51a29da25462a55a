"""Speed benchmarks (``ttscale bench ...``): each runs its baseline in the same process and ends with one JSON line."""
