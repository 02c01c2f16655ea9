"""``torch.backends.cudnn``'s flags, for scripts that set them (``import distgrad.backends.cudnn as cudnn``).

distgrad does not use cuDNN: its convolutions are im2col and cuBLAS GEMMs, the same algorithm every
time. So these module attributes are stored and read back, and change nothing.
"""
enabled = True
"""No effect: there is no cuDNN to turn off."""
benchmark = False
"""No effect: there is one convolution algorithm, nothing to choose between."""
deterministic = False
"""No effect: the convolutions are deterministic already (see ``dg.use_deterministic_algorithms``)."""
allow_tf32 = True
"""No effect: no cuDNN convolutions (``backends.cuda.matmul.allow_tf32`` covers the GEMMs)."""
benchmark_limit = 10
"""No effect."""


def is_available() -> bool:
    """False: distgrad never calls cuDNN."""
    return False


def version() -> None:
    """None: no cuDNN is loaded."""
    return None
