"""curation: the s1K pipeline on local models — pool, decontamination and dedup, traces, quality, difficulty,
diversity and selection. Every stage reads and writes :class:`curation.schema.Question` records and gives every
question it drops a reason (:class:`curation.schema.Drop`)."""
