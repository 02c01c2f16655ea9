"""All-reduce in a world formed the PyTorch way (``dg.multiprocessing.spawn`` + ``env://``) against one
started by ``mpiexec``: the same W6 sweep (``distgrad.bench.allreduce.sweep``), and the time
``init_process_group`` takes, on N ranks of this machine.

The rendezvous joins the ranks with ``MPI_Comm_connect``/``accept``; whether MPI then moves the bytes
through shared memory or through its network module decides the bandwidth, which this measures.
Prints one JSON line: per size both times and rendezvous / mpiexec.

    python benchmarks/launch_allreduce.py --ranks 2
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

PREFIX = "launch-allreduce-result "


def _measure(reps: int) -> dict:
    """On every rank of an initialised world: the sweep; rank 0 returns the rows."""
    import distgrad.distributed as dist
    from distgrad.bench.allreduce import W6_SIZES, sweep
    rows = sweep({"device": "cpu", "dtypes": ["float32"], "sizes": list(W6_SIZES), "warmup": 3, "reps": reps,
                  "min_reps": reps, "seconds_per_size": float("inf"), "compare_mpi4py": False})
    return {r["bytes"]: r["time_us"] for r in rows}


def _report(rows: dict, init_s: float) -> None:
    import distgrad.distributed as dist
    if dist.get_rank() == 0:
        print(PREFIX + json.dumps({"rows": rows, "init_s": init_s}), flush=True)
    dist.destroy_process_group()


def mpiexec_rank(reps: int) -> None:
    import distgrad.distributed as dist
    start = time.perf_counter()
    dist.init_process_group("mpi")
    init_s = time.perf_counter() - start
    _report(_measure(reps), init_s)


def spawned_rank(rank: int, world_size: int, reps: int) -> None:
    import distgrad.distributed as dist
    start = time.perf_counter()
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    init_s = time.perf_counter() - start
    _report(_measure(reps), init_s)


def _result(command: list, env: dict) -> dict:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    for line in done.stdout.splitlines():
        if line.startswith(PREFIX):
            return json.loads(line[len(PREFIX):])
    raise RuntimeError(f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--role", choices=("parent", "mpiexec", "spawn"), default="parent", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "mpiexec":
        return mpiexec_rank(args.reps)
    if args.role == "spawn":
        import distgrad as dg
        return dg.multiprocessing.spawn(spawned_rank, args=(args.ranks, args.reps), nprocs=args.ranks)
    from distgrad.launch import mpi
    from distgrad.bench.machine import environment
    me = [sys.executable, os.path.abspath(__file__), "--ranks", str(args.ranks), "--reps", str(args.reps)]
    mpiexec = mpi.find_mpiexec()
    by_mpiexec = _result(mpi.mpiexec_command(args.ranks, me + ["--role", "mpiexec"], mpiexec,
                                             mpi.mpiexec_flavour(mpiexec)), dict(os.environ))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    by_spawn = _result(me + ["--role", "spawn"], {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    sizes = [{"bytes": int(n), "mpiexec_us": round(by_mpiexec["rows"][n], 1), "rendezvous_us": round(t, 1),
              "ratio": round(t / by_mpiexec["rows"][n], 3)} for n, t in by_spawn["rows"].items()]
    print(json.dumps({"benchmark": "launch_allreduce", "world_size": args.ranks, "reps": args.reps,
                      "statistic": "median, slowest rank", "sizes": sizes,
                      "init_s": {"mpiexec": round(by_mpiexec["init_s"], 3), "rendezvous": round(by_spawn["init_s"], 3)},
                      **environment()}), flush=True)


if __name__ == "__main__":
    main()
