"""A real one-node SLURM cluster for tests (``../shared/notes/slurm-single-node.md``).

slurmctld and slurmd run from a private configuration, spool and log folder (``SLURM_CONF`` points
the clients at it); munged is started only when it is not running already. ``stop()`` cancels jobs
left running, then ends what was started, by the PIDs in the pid files, slurmd first. Needs root and
Debian's slurmctld, slurmd, slurm-client and munge packages.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

DAEMONS = ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged")

CONF = """\
ClusterName=distgrad-tests
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=pmi2
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={dir}/jobcomp.txt
MinJobAge=4
FirstJobId={first_job_id}
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmdSpoolDir={dir}/slurmd
StateSaveLocation={dir}/slurmctld
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""


def unavailable_reason() -> str | None:
    """Why a cluster cannot start here, or None when it can be tried."""
    missing = [d for d in DAEMONS if not os.access(d, os.X_OK)]
    if missing or not shutil.which("sbatch"):
        return f"SLURM is not installed (missing {', '.join(missing) or 'sbatch'})"
    if os.geteuid() != 0:
        return "starting slurmd needs root"
    return None


class Cluster:
    def __init__(self, directory: str):
        self.dir = directory
        self.host = socket.gethostname().split(".")[0]
        self.env = {**os.environ, "SLURM_CONF": os.path.join(directory, "slurm.conf")}
        self._munged_pid_file = None

    def start(self, limit_s: float = 30) -> None:
        for sub in ("slurmd", "slurmctld"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        with open(self.env["SLURM_CONF"], "w") as f:
            f.write(CONF.format(host=self.host, dir=self.dir, cpus=os.cpu_count() or 1, first_job_id=_fresh_job_id()))
        self._start_munge()
        conf = self.env["SLURM_CONF"]
        subprocess.run(["/usr/sbin/slurmctld", "-i", "-f", conf], env=self.env, check=True)
        subprocess.run(["/usr/sbin/slurmd", "-N", self.host, "-f", conf], env=self.env, check=True)
        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            state = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=self.env, capture_output=True, text=True)
            if state.stdout.strip() == "idle":
                return
            time.sleep(0.2)
        raise RuntimeError(f"the SLURM node did not become idle in {limit_s} s: see {self.dir}/*.log")

    def _start_munge(self) -> None:
        if subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode == 0:
            return  # a munged is already serving
        os.makedirs("/run/munge", exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True)
        self._munged_pid_file = "/run/munge/munged.pid"

    def stop(self) -> None:
        # Jobs still running (a test that timed out) would outlive the daemons: cancel them first.
        subprocess.run(["scancel", "--full", "--user", "root"], env=self.env, capture_output=True)
        end = time.monotonic() + 10
        while time.monotonic() < end and subprocess.run(["squeue", "-h"], env=self.env, capture_output=True,
                                                         text=True).stdout.strip():
            time.sleep(0.2)
        signalled = []
        for pid_file in (os.path.join(self.dir, "slurmd.pid"), os.path.join(self.dir, "slurmctld.pid"),
                         self._munged_pid_file):
            if pid_file and os.path.exists(pid_file):
                with open(pid_file) as f:
                    pid = int(f.read().strip())
                try:
                    os.kill(pid, signal.SIGTERM)
                    signalled.append(pid)
                except ProcessLookupError:
                    pass
        for pid in signalled:
            _wait_gone(pid)


def _fresh_job_id() -> int:
    """Job ids unlike those of earlier test clusters: MPICH names its shared memory after the job
    and step ids, and segments that a killed job left in /dev/shm break a later job with the same ids."""
    return 1000 + int(time.time() * 10) % 50_000_000


def _wait_gone(pid: int, limit_s: float = 10) -> None:
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def running_cluster(directory: str):
    """A pytest fixture body: skips without SLURM or without MPICH, else yields a started Cluster."""
    import pytest

    from distgrad.launch import mpi
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    if mpi.library_flavour() != "mpich":
        pytest.skip("these tests expect mpi4py on MPICH (srun --mpi=pmi2)")
    cluster = Cluster(directory)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
