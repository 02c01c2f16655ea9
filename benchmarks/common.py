"""What every benchmark prints beside its figures: versions, thread settings, the machine."""
from __future__ import annotations

import os
import platform
import subprocess

import numpy as np


def environment() -> dict:
    env = {
        "python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }
    try:
        import torch
        env["torch"] = torch.__version__
    except ImportError:
        env["torch"] = None
    try:
        env["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                       cwd=os.path.dirname(__file__)).stdout.strip() or None
    except OSError:
        env["commit"] = None
    return env


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import distgrad as dg
        dg.cuda.synchronize()
