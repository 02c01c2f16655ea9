"""distgrad.distributed (being written)."""
