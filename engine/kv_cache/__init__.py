"""engine/kv_cache."""
