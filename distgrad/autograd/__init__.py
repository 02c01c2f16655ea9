"""The tape autograd engine: nodes, grad modes, hooks, ``grad``, ``Function``."""
from distgrad.autograd import tensor_methods  # noqa: F401  (binds Tensor.backward and the hooks)
from distgrad.autograd.anomaly_mode import detect_anomaly, is_anomaly_enabled, set_detect_anomaly  # noqa: F401
from distgrad.autograd.engine import queue_callback  # noqa: F401
from distgrad.autograd.function import Function  # noqa: F401
from distgrad.autograd.grad import backward, grad  # noqa: F401
from distgrad.autograd.grad_mode import (enable_grad, inference_mode, is_grad_enabled, no_grad,  # noqa: F401
                                         set_grad_enabled)
from distgrad.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck  # noqa: F401
