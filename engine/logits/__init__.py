"""engine/logits."""
