"""Optimizers (``SGD``, ``Adam``, ``AdamW``, ``RMSprop``, ``Adagrad``) and ``lr_scheduler``, as in ``torch.optim``."""
from distgrad.optim import lr_scheduler  # noqa: F401
from distgrad.optim.adagrad import Adagrad
from distgrad.optim.adam import Adam, AdamW
from distgrad.optim.optimizer import Optimizer
from distgrad.optim.rmsprop import RMSprop
from distgrad.optim.sgd import SGD

__all__ = ["Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "lr_scheduler"]
