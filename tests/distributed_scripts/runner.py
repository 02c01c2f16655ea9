"""Running test scripts on real ranks: ``mpiexec -n N python script`` with a hard time limit."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass

from distgrad.launch import mpi

SCRIPTS = os.path.dirname(os.path.abspath(__file__))


class Skip(Exception):
    """Raised by a case that cannot run in this configuration; reported as ``skipped: <why>``."""


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run_cases(cases, r: int, n: int) -> dict:
    """Runs every ``case(r, n)``; returns ``{"results": {name: "ok" | "skipped: why" | the traceback},
    "data": {name: what it returned}, "seconds": {name: its time}}`` (a failing case fails alone)."""
    results, data, seconds = {}, {}, {}
    for case in cases:
        start = time.perf_counter()
        try:
            data[case.__name__] = case(r, n)
            results[case.__name__] = "ok"
        except Skip as why:
            results[case.__name__] = f"skipped: {why}"
        except Exception:
            results[case.__name__] = traceback.format_exc()
        seconds[case.__name__] = round(time.perf_counter() - start, 3)
    return {"results": results, "data": data, "seconds": seconds}


def run_cases_on_the_mpi_world(cases, timeout: float) -> None:
    """A cases script's ``main``: joins the ``mpiexec`` world, runs ``cases`` on this rank and writes its
    report into the folder ``sys.argv[1]``."""
    import distgrad.distributed as dist

    dist.init_process_group(backend="mpi", timeout=timeout)  # a desynchronised case ends the job, not hangs
    r, n = dist.get_rank(), dist.get_world_size()
    write_report(sys.argv[1], r, {"world_size": n, **run_cases(cases, r, n)})
    dist.destroy_process_group()


def write_report(directory: str, rank: int, report: dict) -> None:
    """Each rank writes its own file: MPI launchers may interleave long lines of ranks' stdout."""
    with open(os.path.join(directory, f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, **report}, f)


def read_reports(directory: str) -> dict:
    """The ranks' reports, by rank."""
    reports = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name)) as f:
            report = json.load(f)
        reports[report["rank"]] = report
    return reports


def reports_of(finished: Finished, directory: str, n: int) -> dict:
    """The reports of all ``n`` ranks of a job that must have succeeded (else its output is the failure)."""
    assert finished.returncode == 0, finished.stdout + finished.stderr
    reports = read_reports(directory)
    assert sorted(reports) == list(range(n)), finished.stdout + finished.stderr
    return reports


def run(command: list, env: dict | None = None, limit_s: float = 60) -> Finished:
    """Runs ``command`` in its own process group; past ``limit_s`` the whole group is killed."""
    start = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, **(env or {})}, start_new_session=True)
    try:
        out, err = child.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        out, err = child.communicate()
        err += f"\n[killed after {limit_s} s]"
    return Finished(child.returncode, out, err, time.monotonic() - start)


def mpiexec(n: int, program: list) -> list:
    """``mpiexec -n n program``, with the flags the MPI found here needs."""
    found = mpi.find_mpiexec()
    return mpi.mpiexec_command(n, program, found, mpi.mpiexec_flavour(found))


def world_command(n: int, program: list) -> list:
    """``program`` on ``n`` ranks: under ``mpiexec``, or alone for one (mpi4py's singleton world, no launcher)."""
    return program if n == 1 else mpiexec(n, program)


def mpiexec_python(n: int, script: str, *args: str) -> list:
    """``mpiexec -n n python scripts/<script> args``."""
    return mpiexec(n, [sys.executable, os.path.join(SCRIPTS, script), *args])


def run_ranks(n: int, script: str, *args: str, env: dict | None = None, limit_s: float = 60) -> Finished:
    return run(mpiexec_python(n, script, *args), env=env, limit_s=limit_s)


def reports_of_ranks(n: int, script: str, report_dir: str, limit_s: float = 60) -> dict:
    """Runs ``script REPORT_DIR`` (a path under ``SCRIPTS``) on ``n`` ranks: every rank's report, by rank.
    Fails with the job's output when it exits non-zero or a rank wrote no report."""
    finished = run_ranks(n, script, report_dir, limit_s=limit_s)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    reports = read_reports(report_dir)
    assert sorted(reports) == list(range(n)), finished.stdout + finished.stderr
    return reports


def processes_mentioning(needle: str, where: str = "cmdline") -> list:
    """PIDs of this host's processes whose ``/proc/<pid>/<where>`` (cmdline or environ) holds ``needle``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/{where}", "rb") as f:
                if needle.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found
