"""``distgrad.nn``: Modules, Parameters, layers, losses, initialisation and utilities, as in ``torch.nn``."""
from distgrad.nn import functional, init, utils  # noqa: F401
from distgrad.nn.containers import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential  # noqa: F401
from distgrad.nn.module import Module  # noqa: F401
from distgrad.nn.modules import *  # noqa: F401,F403
from distgrad.nn.parameter import Parameter  # noqa: F401
