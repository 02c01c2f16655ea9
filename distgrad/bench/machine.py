"""Facts about the machine a benchmark ran on: what would change the numbers.

``machine_facts`` is the ``machine`` entry of ``distgrad-bench``'s ``results.json``; ``environment`` is
the shorter set that every ``benchmarks/*.py`` line carries beside its figures.
"""
from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys

import numpy as np

import distgrad
from distgrad import backend
from distgrad.bench.threads import thread_settings


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def git_commit() -> str | None:
    """distgrad's commit, with ``-dirty`` when the working tree has uncommitted changes; None outside git."""
    here = os.path.dirname(os.path.abspath(distgrad.__file__))
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("-dirty" if dirty else "")


_MPI_QUERY = ("import json, mpi4py; mpi4py.rc.initialize = False; from mpi4py import MPI; "
              "print(json.dumps([MPI.Get_library_version(), MPI.Get_version(), mpi4py.__version__]))")


def mpi_facts() -> dict:
    """The MPI library under mpi4py and its version. Asked in a child process: importing mpi4py's MPI
    without initialising it here would leave this process unable to start MPI later."""
    try:
        done = subprocess.run([sys.executable, "-c", _MPI_QUERY], capture_output=True, text=True, timeout=60)
        library, standard, version = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return {"mpi": None, "mpi4py": None}
    first_line = library.strip("\x00 \n").splitlines()[0] if library.strip() else ""
    return {"mpi": " ".join(first_line.split()) or None, "mpi_standard": "{}.{}".format(*standard),
            "mpi4py": version}


def gpu_facts() -> dict:
    """GPU names, driver and CUDA runtime versions and NCCL's version, when CuPy sees GPUs; else empty."""
    if not backend.cuda_is_available():
        return {"gpus": []}
    cp = backend.cupy_module()
    runtime = cp.cuda.runtime
    names = []
    for index in range(backend.cuda_device_count()):
        name = runtime.getDeviceProperties(index)["name"]
        names.append(name.decode() if isinstance(name, bytes) else str(name))
    facts = {"gpus": names, "cuda_driver": _cuda_version(runtime.driverGetVersion()),
             "cuda_runtime": _cuda_version(runtime.runtimeGetVersion()), "cupy": cp.__version__}
    try:
        from distgrad.distributed.nccl_comm import nccl_module
        version = nccl_module().get_version()
        major, minor, patch = version // 10000, version // 100 % 100, version % 100
        facts["nccl"] = f"{major}.{minor}.{patch}" if version >= 10000 else str(version)
    except Exception as e:  # no NCCL in this CuPy build: say so rather than fail the run
        facts["nccl"] = f"unavailable ({type(e).__name__})"
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        facts["nvidia_driver"] = smi.stdout.splitlines()[0].strip() if smi.returncode == 0 and smi.stdout else None
    except (OSError, subprocess.TimeoutExpired):
        facts["nvidia_driver"] = None
    return facts


def _cuda_version(number: int) -> str:
    return f"{number // 1000}.{number % 1000 // 10}"


def torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


def machine_facts() -> dict:
    """Everything above in one dictionary (the ``machine`` entry of ``results.json``)."""
    return {
        "host": socket.gethostname(), "os": platform.platform(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
        "memory_gib": memory_gib(), **gpu_facts(), **mpi_facts(),
        "python": platform.python_version(), "numpy": np.__version__, "torch": torch_version(),
        "distgrad": distgrad.__version__, "distgrad_commit": git_commit(), "executable": sys.executable,
        "threads_env": thread_settings(),
        "load_average_at_start": load_average(),
    }


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: above zero on an idle machine means others shared it while measuring."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def environment() -> dict:
    """Versions, thread settings and the commit: what a benchmark's one JSON line says beside its figures."""
    return {"python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine(),
            "cpus": os.cpu_count(), "threads": thread_settings(), "torch": torch_version(), "commit": git_commit()}
