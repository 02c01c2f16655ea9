"""distgrad and its PyTorch twin behind the names they share, so that one workload builds both sides of a ratio.

distgrad follows PyTorch's names (``nn.Linear``, ``F.cross_entropy``, ``optim.SGD``, ``tensor``,
``manual_seed``, ``no_grad``), so a benchmark written against a ``Framework`` runs the same code in
both libraries: what differs is only which library the names come from and how a device is waited for.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from distgrad.bench.timing import no_sync

__all__ = ["Framework", "load", "measure_both"]


@dataclass(frozen=True)
class Framework:
    """``lib`` is ``distgrad`` or ``torch``; ``nn``, ``F`` and ``optim`` are its modules of those names."""

    name: str
    lib: ModuleType
    nn: ModuleType
    F: ModuleType
    optim: ModuleType

    def synchronizer(self, device: str):
        """A no-argument function that waits for ``device``'s queued work (nothing to wait for on the CPU)."""
        if device == "cpu":
            return no_sync
        if self.name == "torch":
            return self.lib.cuda.synchronize
        from distgrad import backend
        return backend.synchronize


def load(name: str) -> Framework | None:
    """``'distgrad'`` or ``'torch'``; None when PyTorch is not installed (its figures are then null)."""
    if name == "distgrad":
        import distgrad
        import distgrad.nn.functional as F
        from distgrad import nn, optim
        return Framework("distgrad", distgrad, nn, F, optim)
    if name != "torch":
        raise ValueError(f"unknown framework {name!r}; expected 'distgrad' or 'torch'")
    try:
        import torch
    except ImportError:
        return None
    return Framework("torch", torch, torch.nn, torch.nn.functional, torch.optim)


def measure_both(measure, skip_torch: bool = False) -> tuple:
    """``(measure(distgrad), measure(PyTorch))``, distgrad first; the second is None when PyTorch is
    skipped or not installed."""
    theirs = None if skip_torch else load("torch")
    return measure(load("distgrad")), None if theirs is None else measure(theirs)
