"""``distgrad.utils``: where PyTorch code looks for ``utils.data``; it holds the objects of ``distgrad.data``."""
from distgrad.utils import data  # noqa: F401

__all__ = ["data"]
