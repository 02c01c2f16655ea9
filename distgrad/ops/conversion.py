"""conversion ops (being written)."""
__all__ = []
