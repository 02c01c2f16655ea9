"""distgrad.nn (being written)."""
