"""inplace ops (being written)."""
__all__ = []
