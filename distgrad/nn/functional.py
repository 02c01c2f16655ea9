"""The functional form of every nn op, with PyTorch's signatures (being written)."""
