"""Problem data: the :class:`Problem` schema, named benchmarks and local files (``datasets``), synthetic tasks."""
