"""distgrad.data (being written)."""
