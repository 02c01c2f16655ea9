"""The MPI library under mpi4py: importing it lazily, and what it can do with GPU buffers.

``import distgrad`` must not start MPI, so mpi4py is imported only when a process group is made.
"""
from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os

from distgrad import envvars

CUDA_AWARE_ENV = envvars.MPI_CUDA_AWARE


def mpi():
    """``mpi4py.MPI`` (MPI initialised, with a singleton world when no launcher started us)."""
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as e:
        raise RuntimeError("distgrad.distributed needs mpi4py and an MPI library: "
                           "pip install 'distgrad[mpi]' (mpi4py and mpich)") from e
    if not MPI.Is_initialized():  # mpi4py was imported earlier with rc.initialize = False
        MPI.Init_thread()
        atexit.register(lambda: MPI.Is_finalized() or MPI.Finalize())
    return MPI


def library_version() -> str:
    """The MPI library's own version string, e.g. 'MPICH Version: 5.0.2 ...' or 'Open MPI v4.1.6 ...'."""
    return mpi().Get_library_version().strip("\x00 \n")


def _loaded_libmpi():
    """The libmpi that mpi4py loaded (found in this process's memory map), or None."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "/libmpi." in line})
    except OSError:
        paths = []
    name = paths[0] if paths else ctypes.util.find_library("mpi")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def is_cuda_aware() -> bool:
    """True when MPI may be handed device (CuPy) buffers directly.

    ``DISTGRAD_MPI_CUDA_AWARE=0|1`` decides; otherwise the library is asked through
    ``MPIX_Query_cuda_support`` (Open MPI, MPICH >= 4), and a library without it is taken as not aware.
    """
    forced = os.environ.get(CUDA_AWARE_ENV)
    if forced is not None:
        return forced.strip() not in ("", "0", "false", "no")
    mpi()
    lib = _loaded_libmpi()
    query = getattr(lib, "MPIX_Query_cuda_support", None) if lib is not None else None
    return bool(query()) if query is not None else False
