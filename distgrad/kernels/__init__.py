"""distgrad's own CUDA kernels: the fused GPU paths of existing ops.

Each kernel is the GPU path of an op that already exists with NumPy/CuPy array code; the op asks
``policy.on_kernel_path`` and the kernel module's ``applies`` before choosing it, and its array code
stays the reference. Sources live in ``cuda/*.cu``; each Python module beside them launches its
kernels and holds a NumPy ``reference_*`` function computing exactly what the kernel computes.

- ``pointwise``: bias + activation (ReLU, GELU with erf or tanh) forward and backward, the GPU path of
  ``gelu`` and of ``ops.fused.bias_activation``; dropout (+ residual add) with a counter-based mask that
  backward recomputes, the GPU path of ``dropout`` and ``dropout_add``.
- ``rows``: softmax and log-softmax with their backward, the causal attention softmax, LayerNorm and
  RMSNorm forward and backward, softmax + cross-entropy forward and backward.
- ``flash_attention``: ``scaled_dot_product_attention`` without materialising the probabilities, its
  backward recomputing them (float32, float16, bfloat16; head dims 16, 32, 64, 128).

``emulator`` runs any of them on the CPU (g++, a thread per CUDA thread), which is how the tests check
them without a GPU. See docs/gpu.md.
"""
