"""Finding ``mpiexec``, telling which MPI it belongs to, and the command line each one needs."""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

from distgrad import envvars

EXPECTED_WORLD_SIZE_ENV = envvars.EXPECTED_WORLD_SIZE  # checked by init_process_group
MPIEXEC_ENV = envvars.MPIEXEC


def find_mpiexec() -> str:
    """``$DISTGRAD_MPIEXEC``, else the ``mpiexec``/``mpirun`` beside this Python (a PyPI MPI in the
    same environment as mpi4py), else the first on ``PATH``."""
    if os.environ.get(MPIEXEC_ENV):
        return os.environ[MPIEXEC_ENV]
    here = os.path.dirname(sys.executable)
    for name in ("mpiexec", "mpirun"):
        beside = os.path.join(here, name)
        if os.access(beside, os.X_OK):
            return beside
    for name in ("mpiexec", "mpirun"):
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError(f"no mpiexec found: pip install mpich (or install MPICH or Open MPI), "
                            f"or set {MPIEXEC_ENV}")


def flavour_of(version_text: str) -> str:
    """``'openmpi'`` or ``'mpich'`` (MPICH, Intel MPI and other Hydra launchers) from version text."""
    text = version_text.lower()
    if "open mpi" in text or "openrte" in text or "open-mpi" in text:
        return "openmpi"
    if "hydra" in text or "mpich" in text or "intel(r) mpi" in text:
        return "mpich"
    raise RuntimeError(f"cannot tell which MPI this is from: {version_text.strip()[:200]!r}")


def mpiexec_flavour(mpiexec: str) -> str:
    """The MPI that ``mpiexec`` belongs to, from ``mpiexec --version``."""
    done = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30)
    return flavour_of(done.stdout + done.stderr)


_LIBRARY_VERSION = ("import mpi4py; mpi4py.rc.initialize = False; from mpi4py import MPI; "
                    "print(MPI.Get_library_version())")


def library_flavour() -> str:
    """The MPI library mpi4py uses, asked in a child process: importing mpi4py here without
    initialising MPI would leave this process unable to start MPI later."""
    done = subprocess.run([sys.executable, "-c", _LIBRARY_VERSION], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"cannot ask mpi4py which MPI it uses: {done.stderr.strip()[-500:]}")
    return flavour_of(done.stdout)


def mpiexec_command(n: int, program: list, mpiexec: str, flavour: str, as_root: bool | None = None,
                    cpus: int | None = None, forward: tuple = ()) -> list:
    """``mpiexec -n N <flags> program...``: Open MPI needs ``--allow-run-as-root`` as root and
    ``--oversubscribe`` for more ranks than cores; MPICH's Hydra needs neither."""
    command = [mpiexec, "-n", str(n)]
    if flavour == "openmpi":
        if as_root if as_root is not None else os.geteuid() == 0:
            command.append("--allow-run-as-root")
        if n > (cpus or os.cpu_count() or 1):
            command.append("--oversubscribe")
        for name in (EXPECTED_WORLD_SIZE_ENV,) + tuple(forward):  # Open MPI forwards only named variables
            command += ["-x", name]
    return command + list(program)


def shell_line(command: list, env: dict | None = None) -> str:
    """The command as one shell line, with its environment assignments first."""
    assignments = [f"{k}={shlex.quote(v)}" for k, v in (env or {}).items()]
    return " ".join(assignments + [shlex.join(command)])
