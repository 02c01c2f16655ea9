"""``distgrad.cpu``: PyTorch's ``torch.cpu`` names that distgrad has: ``amp.autocast`` and ``amp.GradScaler``."""
import importlib


def __getattr__(name: str):
    if name == "amp":  # loaded on first use: GradScaler reaches up to distgrad.distributed
        return importlib.import_module("distgrad.amp.device_amp").cpu
    raise AttributeError(f"module 'distgrad.cpu' has no attribute '{name}'")
