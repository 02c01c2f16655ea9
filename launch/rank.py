"""One rank's keeper (``python -m distgrad.launch.rank SCRIPT ARGS...``), started by mpiexec or srun.

``distgrad-launch`` does not hand ``python SCRIPT`` to mpiexec directly: each rank runs under this
small parent, which starts the script as its child and stays beside it to do what neither MPI nor
the script can:

* **It records how its rank ended** (exit status or signal, and when) in the launcher's status folder,
  so that after a failure the launcher names the rank that ended first and how, even for
  ``os._exit(3)`` or SIGKILL, where nothing inside the rank runs.
* **It ties the rank's life to the launcher's.** Why this and not only a parent-death signal on
  mpiexec: the ranks are not children of the launcher (mpiexec -> proxy -> rank; srun -> slurmstepd
  -> rank), and a SIGKILLed mpiexec (or one killed through its own parent-death signal) is not
  guaranteed to take its proxies and ranks with it (Hydra, Open MPI's prted and srun each differ).
  Here the keeper watches the launcher's process (a pidfd, no polling) and kills the rank when the
  launcher is gone; the rank carries ``PR_SET_PDEATHSIG(SIGKILL)`` so it dies with its keeper,
  whichever way the keeper ends (MPI launchers SIGKILL their direct children on abort). The same
  works under MPICH, Open MPI and srun because it needs nothing from them.
* It passes on the signals it gets (SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2) to its rank.

It exits with its child's status (or dies by the same signal), so MPI sees what the rank did;
except after SIGINT or SIGTERM (the launcher stopping the job, which then exits 130 or 143 itself):
then it exits 0, so that MPI prints no failure banner for every rank that the stop ended.
"""
from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

from distgrad import envvars

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
_PR_SET_PDEATHSIG = 1
RANK_VARIABLES = ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID")


def rank_from_environment(env=None) -> int | None:
    """This process's MPI rank as its launcher announced it (before MPI starts), or None."""
    env = os.environ if env is None else env
    for name in RANK_VARIABLES:
        if env.get(name, "").isdigit():
            return int(env[name])
    return None


def die_with_parent() -> None:
    """In the child between fork and exec: SIGKILL this process when its parent (the keeper) ends."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the launcher-watch still ends the rank
        pass


def launcher_identity() -> str:
    """What the launcher puts in ``DISTGRAD_LAUNCHER``: ``pid@host:start`` (start time tells a reused pid)."""
    return f"{os.getpid()}@{socket.gethostname()}:{_start_time(os.getpid())}"


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name
    except (OSError, IndexError):
        return "?"


def _watch_launcher(identity: str, on_gone) -> None:
    """Calls ``on_gone()`` from a daemon thread when the launcher process ends (same host only:
    across nodes, srun ends the tasks of a step whose srun is gone)."""
    try:
        pid_text, rest = identity.split("@", 1)
        host, start = rest.rsplit(":", 1)
        pid = int(pid_text)
    except ValueError:
        return
    if host != socket.gethostname():
        return
    if _start_time(pid) != start:
        on_gone()  # already gone (and the pid perhaps reused)
        return
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None

    def wait():
        if fd is not None:
            select.select([fd], [], [])  # a pidfd turns readable when its process ends
        else:
            while _start_time(pid) == start:
                time.sleep(0.5)
        on_gone()

    threading.Thread(target=wait, name="distgrad-launcher-watch", daemon=True).start()


def record_end(folder: str | None, rank: int | None, status: int) -> None:
    """Writes ``rank<r>.json`` (rank, status, time) into the launcher's status folder, atomically."""
    if not folder or rank is None or not os.path.isdir(folder):
        return
    path = os.path.join(folder, f"rank{rank}.json")
    try:
        with open(path + ".part", "w") as f:
            json.dump({"rank": rank, "status": status, "time": time.time(), "host": socket.gethostname()}, f)
        os.replace(path + ".part", path)
    except OSError:
        pass  # a report is a courtesy: never let it change the rank's exit


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m distgrad.launch.rank SCRIPT [ARGS...]", file=sys.stderr)
        return 2
    rank = rank_from_environment()
    # close_fds=False: MPICH's PMI hands the rank an inherited socket (PMI_FD) that the script needs.
    child = subprocess.Popen([sys.executable] + argv, close_fds=False, preexec_fn=die_with_parent)
    stopped = []

    def pass_on(signum, frame):
        if signum in (signal.SIGINT, signal.SIGTERM):
            stopped.append(signum)
        child.send_signal(signum)

    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, pass_on)
    launcher = os.environ.get(envvars.LAUNCHER)
    if launcher:
        _watch_launcher(launcher, child.kill)
    status = child.wait()
    record_end(os.environ.get(envvars.LAUNCH_STATUS_DIR), rank, status)
    if stopped:
        return 0
    if status < 0:  # die by the same signal, so mpiexec and the launcher report it as such
        if -status not in (signal.SIGKILL, signal.SIGSTOP):  # those two cannot be handled anyway
            signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        return 128 - status
    return status


if __name__ == "__main__":
    sys.exit(main())
