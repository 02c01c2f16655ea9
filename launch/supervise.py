"""Running one attempt of a job: mpiexec (or srun) as a child, signals passed on, nothing left behind.

* The child gets its own session, so a terminal's Ctrl-C reaches the launcher alone, which passes it
  on once.
* SIGINT and SIGTERM are passed on; ``GRACE_S`` later mpiexec and every process below it are SIGKILLed,
  and the launcher exits 128 + the signal (130, 143) like other tools.
* ``PR_SET_PDEATHSIG`` ends mpiexec if the launcher is SIGKILLed (nothing can be passed on then); the
  ranks' keepers (``distgrad.launch.rank``) watch the launcher too and kill their ranks.
* Each rank's keeper records how its rank ended; after a failure ``first_to_end`` names the rank.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import threading
from dataclasses import dataclass

GRACE_S = 3.0  # from a forwarded SIGINT/SIGTERM to SIGKILL of what is left (ranks gone within 5 s)
PASSED_ON = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
STOPPING = (signal.SIGINT, signal.SIGTERM)
_PR_SET_PDEATHSIG = 1


@dataclass
class Outcome:
    status: int  # the child's, as subprocess reports it (negative: killed by that signal)
    stopped_by: int | None  # SIGINT or SIGTERM when the launcher was told to stop

    @property
    def exit_status(self) -> int:
        """What the launcher exits with: 128 + N after signal N (told to stop, or the child killed)."""
        if self.stopped_by is not None:
            return 128 + self.stopped_by
        return self.status if self.status >= 0 else 128 - self.status


def _end_with_launcher() -> None:
    # In mpiexec between fork and exec. SIGKILL, not SIGTERM: a launcher that was SIGKILLed can pass
    # nothing on, and mpiexec must not linger; the ranks' keepers end the ranks themselves.
    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def descendants(pid: int) -> list:
    """PIDs of this host's processes below ``pid`` (mpiexec's proxies, the keepers; Hydra puts each
    rank in a session of its own, so a session or process group would miss them)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def keepers_below(pid: int) -> list:
    """The rank keepers (``distgrad.launch.rank``) among the processes below ``pid``."""
    found = []
    for member in descendants(pid):
        try:
            with open(f"/proc/{member}/cmdline", "rb") as f:
                if b"distgrad.launch.rank\0" in f.read():
                    found.append(member)
        except OSError:
            pass
    return found


def kill_tree(pid: int) -> None:
    """SIGKILLs ``pid`` and everything below it (each rank dies with its keeper: PR_SET_PDEATHSIG)."""
    for member in [pid] + descendants(pid):
        try:
            os.kill(member, signal.SIGKILL)
        except OSError:
            pass


def run_job(command: list, env: dict) -> Outcome:
    """Runs ``command`` until it ends, passing on our signals (see the module docstring)."""
    child = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=_end_with_launcher)
    stopped_by = []
    timer = threading.Timer(GRACE_S, kill_tree, (child.pid,))
    timer.daemon = True

    def pass_on(signum, frame):
        if signum in STOPPING and not stopped_by:
            stopped_by.append(signum)
            timer.start()
        # Straight to the ranks' keepers where they are on this host: mpiexec would print its own
        # lines about the signal, and MPI a failure banner for every rank that a stop ended.
        for pid in keepers_below(child.pid) or [child.pid]:
            try:
                os.kill(pid, signum)
            except OSError:
                pass

    previous = {sig: signal.signal(sig, pass_on) for sig in PASSED_ON}
    try:
        status = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        timer.cancel()
    return Outcome(status, stopped_by[0] if stopped_by else None)


def read_ends(folder: str) -> list:
    """The keepers' records (rank, status, time, host), earliest first."""
    ends = []
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        if name.startswith("rank") and name.endswith(".json"):
            try:
                with open(os.path.join(folder, name)) as f:
                    ends.append(json.load(f))
            except (OSError, ValueError):
                pass
    return sorted(ends, key=lambda end: end["time"])


def describe_status(status: int) -> str:
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def first_to_end(folder: str, world_size: int) -> str | None:
    """``'rank 1 of 2 ended first (exit status 3)'`` from the keepers' records, or None without any.

    When one rank fails, MPI kills the others a moment later, so the earliest record is not always
    the cause: a rank that exited with a non-zero status comes first, then one killed by a signal,
    then one that exited with 0 (while the others were still running)."""
    ends = read_ends(folder)
    if not ends:
        return None
    exited = [end for end in ends if end["status"] > 0]
    killed = [end for end in ends if end["status"] < 0]
    first = (exited or killed or ends)[0]
    return f"rank {first['rank']} of {world_size} ended first ({describe_status(first['status'])})"
