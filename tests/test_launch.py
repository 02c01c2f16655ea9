"""distgrad-launch: the command lines it builds, and real launches (world size, exit status, signals)."""
import os
import signal
import subprocess
import sys
import time

import pytest

from distgrad.launch import main as launch_main
from distgrad.launch import mpi, slurm

pytest.importorskip("mpi4py")

from distributed_scripts import runner  # noqa: E402

LAUNCH = [sys.executable, "-m", "distgrad.launch"]

HYDRA_VERSION = "HYDRA build details:\n    Version: 4.2.0\n"
OPEN_MPI_4_VERSION = "mpiexec (OpenRTE) 4.1.6\n\nReport bugs to http://www.open-mpi.org/community/help/\n"
OPEN_MPI_5_VERSION = "mpiexec (Open MPI) 5.0.5\n\nReport bugs to https://www.open-mpi.org/community/help/\n"


def fake_mpiexec(tmp_path, version: str) -> str:
    """An executable that answers ``--version`` like a given MPI and otherwise starts every rank as
    its own singleton world, the way a wrong launch mode does."""
    path = tmp_path / "mpiexec"
    path.write_text(f"""#!/bin/bash
if [ "$1" = "--version" ]; then printf '%s' {version!r}; exit 0; fi
n=$2; shift 2; status=0
for i in $(seq "$n"); do "$@" & done
for job in $(jobs -p); do wait "$job" || status=$?; done
exit $status
""")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("text, flavour", [(HYDRA_VERSION, "mpich"), (OPEN_MPI_4_VERSION, "openmpi"),
                                           (OPEN_MPI_5_VERSION, "openmpi"),
                                           ("Intel(R) MPI Library for Linux* OS, Version 2021.10", "mpich")])
def test_the_mpi_is_told_from_its_version_text(text, flavour):
    assert mpi.flavour_of(text) == flavour


def test_an_unknown_mpiexec_is_an_error():
    with pytest.raises(RuntimeError, match="cannot tell which MPI this is"):
        mpi.flavour_of("some launcher 1.0")


def test_mpich_needs_no_extra_flags():
    assert mpi.mpiexec_command(4, ["python", "t.py"], "/x/mpiexec", "mpich", as_root=True, cpus=2) == \
        ["/x/mpiexec", "-n", "4", "python", "t.py"]


def test_open_mpi_gets_root_and_oversubscription_flags_only_when_needed():
    assert mpi.mpiexec_command(4, ["python", "t.py"], "mpirun", "openmpi", as_root=True, cpus=2) == \
        ["mpirun", "-n", "4", "--allow-run-as-root", "--oversubscribe", "-x", "DISTGRAD_EXPECTED_WORLD_SIZE",
         "python", "t.py"]
    assert mpi.mpiexec_command(2, ["python", "t.py"], "mpirun", "openmpi", as_root=False, cpus=2) == \
        ["mpirun", "-n", "2", "-x", "DISTGRAD_EXPECTED_WORLD_SIZE", "python", "t.py"]


def test_dry_run_prints_the_mpiexec_line(monkeypatch, capsys):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert launch_main.main(["--dry-run", "-n", "2", "train.py", "--epochs", "1"]) == 0
    mpiexec = mpi.find_mpiexec()
    flags = mpi.mpiexec_command(2, [], mpiexec, mpi.mpiexec_flavour(mpiexec))[3:]
    expected = " ".join([f"DISTGRAD_EXPECTED_WORLD_SIZE=2 {mpiexec} -n 2"] + flags +
                        [sys.executable, "-m distgrad.launch.rank train.py --epochs 1"])
    assert capsys.readouterr().out.strip() == expected


def test_dry_run_with_open_mpi_as_root(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("DISTGRAD_MPIEXEC", fake_mpiexec(tmp_path, OPEN_MPI_4_VERSION))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    launch_main.main(["--dry-run", "-n", "3", "t.py"])
    assert capsys.readouterr().out.strip() == (
        f"DISTGRAD_EXPECTED_WORLD_SIZE=3 {tmp_path}/mpiexec -n 3 --allow-run-as-root --oversubscribe "
        f"-x DISTGRAD_EXPECTED_WORLD_SIZE -x DISTGRAD_RESTART_COUNT -x DISTGRAD_LAUNCHER -x DISTGRAD_LAUNCH_STATUS_DIR "
        f"{sys.executable} -m distgrad.launch.rank t.py")


def test_inside_a_slurm_allocation_it_uses_srun_with_the_mode_of_the_mpi(monkeypatch, capsys):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_NTASKS", "3")
    launch_main.main(["--dry-run", "t.py", "-x"])
    mode = slurm.SRUN_MPI_MODES[mpi.library_flavour()]
    assert capsys.readouterr().out.strip() == \
        f"DISTGRAD_EXPECTED_WORLD_SIZE=3 srun --mpi={mode} --ntasks=3 {sys.executable} -m distgrad.launch.rank t.py -x"
    launch_main.main(["--dry-run", "--srun-mpi", "pmix", "-n", "2", "t.py"])
    assert "srun --mpi=pmix --ntasks=2" in capsys.readouterr().out


def test_without_n_outside_slurm_it_asks_for_n(monkeypatch, capsys):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert launch_main.main(["t.py"]) == 2
    assert "give the number of ranks with -n" in capsys.readouterr().err


def test_it_starts_the_ranks_it_was_asked_for(tmp_path):
    finished = runner.run(LAUNCH + ["-n", "3", f"{runner.SCRIPTS}/report_world.py", str(tmp_path)], limit_s=30)
    reports = runner.reports_of(finished, str(tmp_path), 3)
    assert {r["world_size"] for r in reports.values()} == {3}


def test_it_returns_the_exit_status_of_the_ranks(tmp_path):
    finished = runner.run(LAUNCH + ["-n", "2", f"{runner.SCRIPTS}/report_world.py", str(tmp_path), "3"], limit_s=30)
    assert finished.returncode == 3, finished.stderr


def test_worlds_of_size_one_where_two_ranks_were_asked_for_are_an_error(tmp_path):
    finished = runner.run(LAUNCH + ["-n", "2", f"{runner.SCRIPTS}/report_world.py", str(tmp_path)],
                          env={"DISTGRAD_MPIEXEC": fake_mpiexec(tmp_path, HYDRA_VERSION)}, limit_s=30)
    assert finished.returncode != 0
    assert "the launcher started 2 ranks but this process is in an MPI world of size 1" in finished.stderr


def test_a_terminate_signal_reaches_the_ranks(tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text("import sys, time\nimport distgrad.distributed as dist\ndist.init_process_group()\n"
                      "open(sys.argv[1] + f'/ready{dist.get_rank()}', 'w').close()\ntime.sleep(60)\n")
    launcher = subprocess.Popen(LAUNCH + ["-n", "2", str(script), str(tmp_path)], start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 20
        while len(list(tmp_path.glob("ready*"))) < 2 and time.monotonic() < end:
            time.sleep(0.05)
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=10) != 0
        time.sleep(0.5)
        assert not runner.processes_mentioning(str(script)), "ranks outlived the launcher"
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
