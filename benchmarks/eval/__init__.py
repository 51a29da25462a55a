"""The evaluation harness: configuration and plan (``config``), executors (``methods``), the run (``runner``), the row store, metrics and the report."""
