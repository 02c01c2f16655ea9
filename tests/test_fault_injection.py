"""Faults injected into real 2-rank jobs: each must end the whole job quickly, non-zero, saying which
rank did what; a stopped or killed launcher leaves no process behind.

The cases are in ``distributed_scripts/failures.py``; each job takes one to three seconds.
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import distgrad as dg

pytest.importorskip("mpi4py")

from distributed_scripts import runner  # noqa: E402

LAUNCH = [sys.executable, "-m", "distgrad.launch"]
FAILURES = os.path.join(runner.SCRIPTS, "failures.py")


def run_case(case: str, launcher: bool = False, env=None) -> runner.Finished:
    command = LAUNCH + ["-n", "2", FAILURES, case] if launcher else runner.mpiexec_python(2, "failures.py", case)
    finished = runner.run(command, env=env, limit_s=40)
    assert "[killed after" not in finished.stderr, finished.stderr
    assert finished.seconds < 15, finished.stderr
    return finished


def test_sys_exit_on_one_rank_ends_the_job_naming_the_rank():
    finished = run_case("sys_exit_on_rank_1")
    assert finished.returncode != 0
    assert "collective #2 of group WORLD is all_reduce(float32[4] on cpu, op=SUM) on ranks [0] but exit" \
        in finished.stderr
    assert "Rank(s) [1] left the job while the others still run collectives" in finished.stderr


@pytest.mark.parametrize("case", ["exception_through_finally", "exception_through_finally_late"])
def test_an_exception_through_finally_destroy_ends_the_job_naming_rank_and_exception(case):
    finished = run_case(case)
    assert finished.returncode != 0
    assert "ValueError: rank 1 fails inside try/finally" in finished.stderr  # the traceback
    assert "rank 1 of 2 raised an uncaught ValueError: rank 1 fails inside try/finally" in finished.stderr


def test_leaving_with_sys_exit_0_while_the_others_run_is_a_failure():
    finished = run_case("sys_exit_0_early_on_rank_1")
    assert finished.returncode != 0
    assert "Rank(s) [1] left the job" in finished.stderr


def test_a_rank_that_reaches_destroy_while_another_starts_a_collective_is_named():
    finished = run_case("leaves_then_others_mismatch_late")
    assert finished.returncode != 0
    assert "is destroy_process_group() on ranks [0] but all_reduce(float32[4] on cpu, op=SUM) on ranks [1]" \
        in finished.stderr


def test_a_non_zero_exit_after_a_clean_teardown_fails_the_job():
    assert run_case("sys_exit_2_at_the_end_on_rank_1").returncode == 2


def test_the_launcher_names_the_rank_that_ended_first_and_how():
    finished = run_case("os_exit_on_rank_1", launcher=True)
    assert finished.returncode != 0
    assert "distgrad-launch: the job failed" in finished.stderr
    assert "rank 1 of 2 ended first (exit status 3)" in finished.stderr


def test_the_launcher_names_a_rank_killed_by_a_signal(tmp_path):
    script = tmp_path / "killed.py"
    script.write_text("import os, signal, time\nimport distgrad.distributed as dist\ndist.init_process_group()\n"
                      "dist.barrier()\nif dist.get_rank() == 1:\n    os.kill(os.getpid(), signal.SIGKILL)\n"
                      "time.sleep(30)\n")
    finished = runner.run(LAUNCH + ["-n", "2", str(script)], limit_s=40)
    assert finished.returncode != 0 and finished.seconds < 15
    assert "rank 1 of 2 ended first (killed by SIGKILL)" in finished.stderr


@pytest.mark.parametrize("case", ["collectives_differ", "shapes_differ"])
def test_mismatched_collectives_are_an_error_without_debug_mode(case):
    finished = run_case(case, env={"DISTGRAD_DISTRIBUTED_DEBUG": "OFF"})
    assert finished.returncode != 0
    expected = {"collectives_differ": "all_reduce(float32[4] on cpu, op=SUM) on ranks [0] but "
                                      "broadcast(float32[4] on cpu, src=0) on ranks [1]",
                "shapes_differ": "all_reduce(float32[4] on cpu, op=SUM) on ranks [0] but "
                                 "all_reduce(float32[5] on cpu, op=SUM) on ranks [1]"}[case]
    assert f"Detected mismatch between collectives on ranks: collective #1 of group WORLD is {expected}" \
        in finished.stderr
    assert "Message truncated" not in finished.stderr


def job_processes(marker: str) -> list:
    """Every process of one test's job: its environment holds ``marker``."""
    return runner.processes_mentioning(marker, where="environ")


def start_hanging_job(tmp_path):
    """The launcher running a job whose rank 0 waits in an all_reduce (inside MPI) and rank 1 sleeps."""
    env = {**os.environ, "READY_DIR": str(tmp_path)}
    launcher = subprocess.Popen(LAUNCH + ["-n", "2", FAILURES, "hang_in_all_reduce_on_rank_0"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    end = time.monotonic() + 30
    while len(list(tmp_path.glob("ready*"))) < 2 and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(0.2)  # rank 0 into the all_reduce
    return launcher


def wait_until_gone(marker: str, seconds: float) -> list:
    end = time.monotonic() + seconds
    while job_processes(marker) and time.monotonic() < end:
        time.sleep(0.1)
    return job_processes(marker)


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_launcher_exits_128_plus_the_signal_with_every_rank_gone(tmp_path, sig, status):
    launcher = start_hanging_job(tmp_path)
    try:
        launcher.send_signal(sig)
        out, err = launcher.communicate(timeout=10)
        assert launcher.returncode == status, err
        assert not wait_until_gone(str(tmp_path), 5), "ranks outlived the launcher"
        assert b"Traceback" not in err and b"BAD TERMINATION" not in err, err
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)


def test_no_process_of_the_job_outlives_a_sigkilled_launcher(tmp_path):
    launcher = start_hanging_job(tmp_path)
    try:
        assert len(job_processes(str(tmp_path))) >= 5  # launcher, mpiexec, proxy, 2 keepers, 2 ranks
        launcher.kill()
        launcher.wait(timeout=10)
        assert not wait_until_gone(str(tmp_path), 5), "processes outlived the SIGKILLed launcher"
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)


def test_with_max_restarts_a_killed_rank_restarts_the_job_which_ends_as_an_uninterrupted_run(tmp_path):
    straight, restarted = tmp_path / "straight", tmp_path / "restarted"
    straight.mkdir(), restarted.mkdir()
    script = os.path.join(runner.SCRIPTS, "elastic_train.py")
    assert runner.run(LAUNCH + ["-n", "2", script, str(straight), "8"], limit_s=60).returncode == 0
    finished = runner.run(LAUNCH + ["-n", "2", "--max-restarts", "1", script, str(restarted), "8", "4"], limit_s=60)
    assert finished.returncode == 0, finished.stderr
    assert "rank 1 of 2 ended first (killed by SIGKILL)" in finished.stderr
    assert "restarting the job (restart 1 of 1, DISTGRAD_RESTART_COUNT=1)" in finished.stderr
    a, b = dg.load(straight / "final.dg"), dg.load(restarted / "final.dg")
    assert (a["attempt"], b["attempt"]) == (0, 1)
    for name, value in a["model"].items():
        np.testing.assert_array_equal(b["model"][name].numpy(), value.numpy())


def test_without_restarts_left_the_failure_is_the_exit_status(tmp_path):
    script = os.path.join(runner.SCRIPTS, "elastic_train.py")
    finished = runner.run(LAUNCH + ["-n", "2", script, str(tmp_path), "8", "2"], limit_s=60)
    assert finished.returncode != 0
    assert "restarting" not in finished.stderr and not (tmp_path / "final.dg").exists()
