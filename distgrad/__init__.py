"""distgrad: PyTorch-style tensors and autograd on NumPy and CuPy, trained across GPUs with MPI/NCCL."""
from distgrad import ops  # noqa: F401  (binds Tensor methods)
from distgrad.autograd.grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from distgrad.backend import Device as device  # noqa: F401
from distgrad.creation import (arange, as_tensor, empty, empty_like, eye, from_dlpack, from_numpy, full,  # noqa: F401
                               full_like, linspace, ones, ones_like, rand, rand_like, randint, randint_like,
                               randn, randn_like, randperm, tensor, zeros, zeros_like)
from distgrad.dtypes import (bool_ as bool, double, float, float16, float32, float64, get_default_dtype, half,  # noqa: F401
                             int, int8, int32, int64, long, set_default_dtype, uint8)
from distgrad.ops import *  # noqa: F401,F403
from distgrad.random import Generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state  # noqa: F401
from distgrad.serialization import load, save  # noqa: F401
from distgrad.tensor import Tensor  # noqa: F401
from distgrad.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck  # noqa: F401
from distgrad import autograd, cuda, data, distributed, nn, optim, viz  # noqa: F401

__version__ = "0.1.0"
