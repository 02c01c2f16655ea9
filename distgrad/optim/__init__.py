"""Optimizers (``SGD``, ``Adam``, ``AdamW``, ``Adamax``, ``NAdam``, ``RAdam``, ``RMSprop``, ``Adagrad``,
``Adadelta``) and ``lr_scheduler``, as in ``torch.optim``."""
from distgrad.optim import lr_scheduler  # noqa: F401
from distgrad.optim.adadelta import Adadelta
from distgrad.optim.adagrad import Adagrad
from distgrad.optim.adam import Adam, AdamW
from distgrad.optim.adam_variants import Adamax, NAdam, RAdam
from distgrad.optim.optimizer import Optimizer
from distgrad.optim.rmsprop import RMSprop
from distgrad.optim.sgd import SGD

__all__ = ["Adadelta", "Adagrad", "Adam", "Adamax", "AdamW", "NAdam", "Optimizer", "RAdam", "RMSprop", "SGD",
           "lr_scheduler"]
