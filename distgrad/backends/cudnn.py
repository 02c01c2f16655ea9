"""``torch.backends.cudnn``'s flags (``import distgrad.backends.cudnn as cudnn``), read by distgrad's cuDNN
convolutions (``distgrad/kernels/cudnn_conv.py``) at every call, as PyTorch reads them.

GPU convolutions run through cuDNN's graph API when NVIDIA's cudnn-frontend package is installed (the
``gpu`` extra); otherwise, and for what cuDNN does not take (groups > 1, a problem without an engine), they
run as im2col + cuBLAS GEMMs, with a one-line notice saying why. docs/gpu.md has the detail.
"""
enabled = True
"""False sends every GPU convolution to im2col + cuBLAS."""
benchmark = False
"""True: for each new convolution problem, time every plan cuDNN offers once and keep the fastest."""
deterministic = False
"""True: leave out the engines cuDNN marks non-deterministic (``dg.use_deterministic_algorithms`` is separate)."""
allow_tf32 = True
"""float32 convolutions may use TF32 tensor cores (PyTorch's default); ``backends.cuda.matmul.allow_tf32``
(default False) covers the GEMMs."""
benchmark_limit = 10
"""Stored only: with ``benchmark``, distgrad times every plan."""


def is_available() -> bool:
    """True when cudnn-frontend is installed and a GPU is there: convolutions can go to cuDNN."""
    import importlib.util

    from distgrad import backend
    return backend.cuda_is_available() and importlib.util.find_spec("cudnn") is not None


def version() -> int | None:
    """The cuDNN library's version (e.g. 91300 for 9.13.0), or None when cuDNN is not available."""
    if not is_available():
        return None
    import importlib
    try:
        return int(importlib.import_module("cudnn").backend_version())
    except Exception:  # a frontend whose library cannot be loaded
        return None
