"""Learning-rate schedules with PyTorch's names and behaviour (``torch.optim.lr_scheduler``)."""
from distgrad.optim.lr_scheduler.base import LRScheduler
from distgrad.optim.lr_scheduler.combine import ChainedScheduler, SequentialLR
from distgrad.optim.lr_scheduler.decay import (CosineAnnealingLR, ExponentialLR, LambdaLR, LinearLR, MultiStepLR,
                                               StepLR)
from distgrad.optim.lr_scheduler.one_cycle import OneCycleLR

__all__ = ["ChainedScheduler", "CosineAnnealingLR", "ExponentialLR", "LRScheduler", "LambdaLR", "LinearLR",
           "MultiStepLR", "OneCycleLR", "SequentialLR", "StepLR"]
