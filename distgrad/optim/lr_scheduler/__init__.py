"""Learning-rate schedules with PyTorch's names and behaviour (``torch.optim.lr_scheduler``)."""
from distgrad.optim.lr_scheduler.base import LRScheduler
from distgrad.optim.lr_scheduler.combine import ChainedScheduler, SequentialLR
from distgrad.optim.lr_scheduler.cyclic import CosineAnnealingWarmRestarts, CyclicLR
from distgrad.optim.lr_scheduler.decay import (ConstantLR, CosineAnnealingLR, ExponentialLR, LambdaLR, LinearLR,
                                               MultiplicativeLR, MultiStepLR, PolynomialLR, StepLR)
from distgrad.optim.lr_scheduler.one_cycle import OneCycleLR
from distgrad.optim.lr_scheduler.plateau import ReduceLROnPlateau

__all__ = ["ChainedScheduler", "ConstantLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "CyclicLR",
           "ExponentialLR", "LRScheduler", "LambdaLR", "LinearLR", "MultiStepLR", "MultiplicativeLR", "OneCycleLR",
           "PolynomialLR", "ReduceLROnPlateau", "SequentialLR", "StepLR"]
