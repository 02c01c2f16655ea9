"""distgrad.optim (being written)."""
