"""Everything ``import distgrad as dg`` offers at the top level (PyTorch's ``torch.*`` names).

``distgrad/__init__.py`` loads this module on the first use of one of these names, so that code
which needs none of them (the launcher) starts without NumPy or the engine. Add new public names
here, and to ``__all__``'s sources: a family of ops is re-exported through ``distgrad.ops.__all__``.
"""
from distgrad import ops  # noqa: F401  (importing the op families binds Tensor's methods)
from distgrad import tensor_factories
from distgrad.amp.autocast_mode import (autocast, clear_autocast_cache, get_autocast_dtype, is_autocast_cache_enabled,
                                        is_autocast_enabled, set_autocast_cache_enabled, set_autocast_dtype,
                                        set_autocast_enabled)
from distgrad.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck
from distgrad.autograd.grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from distgrad.backend import Device as device
from distgrad.backend import default_device as get_default_device
from distgrad.backend import set_default_device
from distgrad.backends import (are_deterministic_algorithms_enabled, get_float32_matmul_precision,
                               is_deterministic_algorithms_warn_only_enabled, set_float32_matmul_precision,
                               use_deterministic_algorithms)
from distgrad.creation import (arange, as_tensor, empty, empty_like, eye, from_dlpack, from_numpy, full, full_like,
                               linspace, ones, ones_like, rand, rand_like, randint, randint_like, randn, randn_like,
                               randperm, tensor, zeros, zeros_like)
from distgrad.dtypes import (bfloat16, bool_ as bool, double, finfo, float, float16, float32, float64, get_default_dtype,
                             half, iinfo, int, int8, int16, int32, int64, long, set_default_dtype, short, uint8)
from distgrad.ops import *  # noqa: F401,F403
from distgrad.promotion import can_cast, promote_types, result_type
from distgrad.random import Generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state
from distgrad.serialization import load, save
from distgrad.tensor import Tensor, is_floating_point, is_tensor, numel
from distgrad.tensor_factories import *  # noqa: F401,F403  (FloatTensor, LongTensor, ...)
from distgrad.threads import get_num_threads, set_num_threads

__all__ = [
    "autocast", "clear_autocast_cache", "get_autocast_dtype", "is_autocast_cache_enabled", "is_autocast_enabled",
    "set_autocast_cache_enabled", "set_autocast_dtype", "set_autocast_enabled",
    "GradcheckError", "gradcheck", "gradgradcheck",
    "enable_grad", "inference_mode", "is_grad_enabled", "no_grad", "set_grad_enabled",
    "device", "get_default_device", "set_default_device",
    "are_deterministic_algorithms_enabled", "get_float32_matmul_precision",
    "is_deterministic_algorithms_warn_only_enabled", "set_float32_matmul_precision", "use_deterministic_algorithms",
    "arange", "as_tensor", "empty", "empty_like", "eye", "from_dlpack", "from_numpy", "full", "full_like",
    "linspace", "ones", "ones_like", "rand", "rand_like", "randint", "randint_like", "randn", "randn_like",
    "randperm", "tensor", "zeros", "zeros_like",
    "bfloat16", "bool", "double", "finfo", "float", "float16", "float32", "float64", "get_default_dtype", "half",
    "iinfo", "int", "int8", "int16", "int32", "int64", "long", "set_default_dtype", "short", "uint8",
    "can_cast", "promote_types", "result_type",
    "Generator", "get_rng_state", "initial_seed", "manual_seed", "seed", "set_rng_state",
    "load", "save",
    "Tensor", "is_floating_point", "is_tensor", "numel",
    *tensor_factories.__all__,
    "get_num_threads", "set_num_threads",
    *ops.__all__,
]
