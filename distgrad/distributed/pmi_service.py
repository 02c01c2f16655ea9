"""A process-management (PMI-1) service for one MPICH process that no ``mpiexec`` started.

Why: a process started without a launcher initialises MPICH as a *singleton*, and MPICH names every
singleton's world ``"singinit"``. Two singletons that ``MPI_Comm_connect``/``MPI_Comm_accept`` each
other then look like the same process to MPICH, which refuses ("Local and remote groups in
MPI_Intercomm_create must not overlap"; MPICH 5.0.x, pmodels/mpich#7805). Served by this program,
the process is instead a world of one with a name of its own, and connecting works, shared memory
between processes of one node included.

``start(name)`` runs this file as a helper process on one end of a socket pair and returns the
environment (``PMI_FD``, ``PMI_RANK``, ``PMI_SIZE``) under which ``MPI_Init`` talks to it on the
other end; it must run before MPI is initialised. The helper answers MPICH's PMI-1 wire protocol
(``cmd=init``, ``get_maxes``, ``get_my_kvsname``, ``put``/``get``, ``barrier_in``, ``finalize``...)
for a world of size 1 and exits when the process closes the socket (it ends, or finalises MPI).
It runs in a process of its own because ``MPI_Init`` holds Python's global lock while it waits
for the answers, so a thread of the same process could never give them.

Run as a program it imports nothing but the standard library: ``python pmi_service.py FD NAME``.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys

_MAXES = "kvsname_max=256 keylen_max=64 vallen_max=1024"
_helpers = []  # the Popen objects of started helpers, kept so that they are reaped, not warned about


def answer(line: str, name: str, keys: dict) -> str | None:
    """The reply to one PMI-1 command line (None for commands that get none)."""
    fields = dict(token.split("=", 1) for token in line.split() if "=" in token)
    command = fields.get("cmd")
    if command == "init":
        return "cmd=response_to_init rc=0 pmi_version=1 pmi_subversion=1"
    if command == "get_maxes":
        return f"cmd=maxes rc=0 {_MAXES}"
    if command == "get_appnum":
        return "cmd=appnum rc=0 appnum=0"
    if command == "get_my_kvsname":
        return f"cmd=my_kvsname rc=0 kvsname={name}"
    if command == "get_universe_size":
        return "cmd=universe_size rc=0 size=1"
    if command == "barrier_in":
        return "cmd=barrier_out rc=0"
    if command == "put":
        keys[fields.get("key", "")] = fields.get("value", "")
        return "cmd=put_result rc=0"
    if command == "get":
        key = fields.get("key", "")
        if key in keys:
            return f"cmd=get_result rc=0 value={keys[key]}"
        return "cmd=get_result rc=-1 msg=key_not_found"
    if command == "finalize":
        return "cmd=finalize_ack rc=0"
    if command == "abort":
        return None
    return f"cmd={command} rc=-1 msg=unsupported_by_distgrad_pmi_service"


def serve(sock, name: str) -> None:
    keys = {}
    with sock, sock.makefile("rwb", buffering=0) as stream:
        for raw in stream:
            reply = answer(raw.decode(errors="replace").strip(), name, keys)
            if reply is not None:
                stream.write((reply + "\n").encode())


def start(name: str) -> dict:
    """Starts the helper for this process; returns the variables to put in ``os.environ`` before
    ``MPI_Init`` (the caller takes them out again afterwards)."""
    mine, theirs = socket.socketpair()
    with theirs:
        _helpers.append(subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__), str(theirs.fileno()), name],
                         pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, start_new_session=True))
    fd = os.dup(mine.fileno())  # an fd no Python object owns: MPI keeps using it until it finalises
    mine.close()
    os.set_inheritable(fd, False)
    return {"PMI_FD": str(fd), "PMI_RANK": "0", "PMI_SIZE": "1"}


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])), sys.argv[2])
