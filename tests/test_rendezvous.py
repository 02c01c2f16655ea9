"""Launching the PyTorch way: ``TCPStore``, the ``env://``/``tcp://`` rendezvous into one MPI world,
``dg.multiprocessing.spawn``, and ``torchrun``, with the DDP cases of ``ddp_scripts/launch_cases.py``."""
import datetime
import os
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

pytest.importorskip("mpi4py")

from ddp_scripts import launch_cases  # noqa: E402
from distributed_scripts import runner  # noqa: E402
from helpers import expect_case_ok  # noqa: E402

from distgrad.distributed import pmi_service, rendezvous  # noqa: E402
from distgrad.distributed.nccl_comm import share_unique_id  # noqa: E402
from distgrad.distributed.store import TCPStore  # noqa: E402

LIMIT_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env(**extra) -> dict:
    """The environment of ranks that no MPI launcher started (pytest itself may run under one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_", "OMPI_", "HYDRA_"))}
    env.pop("DISTGRAD_EXPECTED_WORLD_SIZE", None)
    return {**env, **extra}


def _run_by_hand(n: int, report_dir: str) -> runner.Finished:
    """n plain processes with torchrun's variables (no launcher at all), each running the cases."""
    port = str(_free_port())
    children = [subprocess.Popen([sys.executable, launch_cases.__file__, report_dir],
                                 env=_clean_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, RANK=str(r),
                                                WORLD_SIZE=str(n), LOCAL_RANK=str(r), LOCAL_WORLD_SIZE=str(n)),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
                for r in range(n)]
    outs, status = [], 0
    for child in children:
        try:
            out, err = child.communicate(timeout=LIMIT_S)
        except subprocess.TimeoutExpired:
            for c in children:
                c.kill()
            out, err = child.communicate()
        outs.append(out + err)
        status = status or child.returncode
    return runner.Finished(status, "\n".join(outs), "", 0.0)


@pytest.fixture(scope="module", params=[("env", 2), ("env", 3), ("spawn", 2), ("spawn", 3)],
                ids=lambda p: f"{p[0]}-world{p[1]}")
def ranks(request, tmp_path_factory):
    mode, n = request.param
    report_dir = str(tmp_path_factory.mktemp(f"{mode}{n}"))
    if mode == "env":
        finished = _run_by_hand(n, report_dir)
    else:  # spawn: env:// for 2 ranks, tcp:// for 3 (PyTorch's two init methods)
        port = _free_port()
        init = "env://" if n == 2 else f"tcp://127.0.0.1:{port}"
        finished = runner.run([sys.executable, launch_cases.__file__, "--spawn", str(n), init, report_dir],
                              env=_clean_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)), limit_s=LIMIT_S)
    return runner.reports_of(finished, report_dir, n)


@pytest.mark.parametrize("case", launch_cases.CASE_NAMES)
def test_pytorch_launched_world(ranks, case):
    expect_case_ok(ranks, case)


def test_each_rank_is_its_own_process(ranks):
    pids = [report["data"]["the_world_is_the_rendezvous_world"]["pid"] for report in ranks.values()]
    assert len(set(pids)) == len(pids)


def test_torchrun_starts_a_world_that_trains_like_one_process(tmp_path):
    """The real torchrun: its agent serves the store, every rank is a client of it."""
    pytest.importorskip("torch")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    if not os.access(torchrun, os.X_OK):
        pytest.skip("torchrun is not installed beside this Python")
    finished = runner.run([torchrun, "--nproc-per-node", "2", "--master-port", str(_free_port()),
                           launch_cases.__file__, str(tmp_path)], env=_clean_env(), limit_s=LIMIT_S)
    reports = runner.reports_of(finished, str(tmp_path), 2)
    for report in reports.values():
        assert set(report["results"].values()) == {"ok"}, report["results"]


def test_the_examples_join_a_torchrun_world(tmp_path):
    """examples/gpt.py started by torchrun trains on 2 ranks, not as two lone processes."""
    pytest.importorskip("torch")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    if not os.access(torchrun, os.X_OK):
        pytest.skip("torchrun is not installed beside this Python")
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be, that is the question\n" * 200)
    example = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "gpt.py")
    finished = runner.run([torchrun, "--nproc-per-node", "2", "--master-port", str(_free_port()), example,
                           "--preset", "tiny", "--steps", "2", "--batch-size", "2", "--eval-interval", "2",
                           "--eval-iters", "1", "--tokens", "0", "--data", str(text)],
                          env=_clean_env(), limit_s=LIMIT_S)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "rank 1 of world 2" in finished.stdout and "rank 0 of world 2" in finished.stdout


# --- spawn's failures -----------------------------------------------------------------------------
FAILING = textwrap.dedent("""
    import os, sys, time
    import distgrad as dg
    import distgrad.distributed as dist

    def train(rank, world_size):
        dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=60)
        if rank == 1:
            raise ValueError("rank 1 ran out of data")
        dist.barrier()  # the others wait here for rank 1: spawn must end them

    if __name__ == "__main__":
        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", sys.argv[1]
        try:
            dg.multiprocessing.spawn(train, args=(3,), nprocs=3)
        except dg.multiprocessing.ProcessRaisedException as e:
            print("index", e.error_index, "message", e)
""")


def test_an_exception_in_one_process_ends_the_others_and_is_raised_naming_it(tmp_path):
    script = tmp_path / "failing.py"
    script.write_text(FAILING)
    finished = runner.run([sys.executable, str(script), str(_free_port())], env=_clean_env(), limit_s=LIMIT_S)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "index 1" in finished.stdout and "-- Process 1 terminated with the following error" in finished.stdout
    assert "ValueError: rank 1 ran out of data" in finished.stdout
    assert finished.seconds < LIMIT_S / 2  # the others were ended, not waited for until their timeout


def test_a_process_that_dies_is_named_with_its_exit_code():
    import distgrad as dg
    with pytest.raises(dg.multiprocessing.ProcessExitedException, match="process 0 terminated with exit code 3"):
        dg.multiprocessing.spawn(_exit_with_3, nprocs=1)


def _exit_with_3(rank):
    os._exit(3)


# --- the store ------------------------------------------------------------------------------------
@pytest.fixture
def store_pair():
    master = TCPStore("127.0.0.1", 0, 2, is_master=True, timeout=5, wait_for_workers=False)
    client = TCPStore("127.0.0.1", master.port, 2, timeout=5)
    master.wait_for_clients(2)
    yield master, client
    client.close()
    master.close()


def test_store_set_get_add_and_check_as_in_pytorch(store_pair):
    master, client = store_pair
    client.set("key", "value")
    assert master.get("key") == b"value"  # bytes, as PyTorch returns
    assert master.add("counter", 3) == 3 and client.add("counter", 2) == 5
    assert client.check(["key", "counter"]) and not client.check(["key", "missing"])
    assert master.compare_set("cs", "", "first") == b"first"
    assert master.compare_set("cs", "other", "second") == b"first"
    assert client.delete_key("key") and not client.delete_key("key")
    assert master.num_keys() == 3  # counter, cs and the store's own count of clients


def test_store_get_waits_for_the_key_and_times_out(store_pair):
    master, client = store_pair
    threading.Timer(0.2, lambda: client.set("late", b"\x00\xff")).start()
    assert master.get("late") == b"\x00\xff"
    master.set_timeout(datetime.timedelta(seconds=0.2))
    with pytest.raises(TimeoutError, match="'never'"):
        master.get("never")
    with pytest.raises(TimeoutError):
        client.wait(["never"], timeout=0.1)


def test_a_client_without_a_master_times_out_naming_the_address():
    port = _free_port()
    with pytest.raises(TimeoutError, match=f"127.0.0.1:{port}"):
        TCPStore("127.0.0.1", port, timeout=0.3)


def test_nccl_unique_id_travels_through_the_store(store_pair):
    """The exchange NCCL uses in a rendezvous world (the GPU part never ran here)."""
    master, client = store_pair
    drawn = tuple(range(-128, 0))  # NCCL's id: 128 signed bytes
    got = {}
    other = threading.Thread(target=lambda: got.setdefault(1, share_unique_id(1, None, store=client, key="id")))
    other.start()
    got[0] = share_unique_id(0, lambda: drawn, store=master, key="id")
    other.join(5)
    assert got == {0: drawn, 1: drawn}


# --- the rendezvous's pieces ------------------------------------------------------------------------
def test_env_init_method_reads_pytorchs_variables(monkeypatch):
    monkeypatch.setenv("MASTER_ADDR", "node7")
    monkeypatch.setenv("MASTER_PORT", "29500")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert rendezvous.parse_init_method("env://") == ("node7", 29500, 2, 4)
    assert rendezvous.parse_init_method("env://", rank=1, world_size=3) == ("node7", 29500, 1, 3)  # arguments win
    monkeypatch.delenv("MASTER_ADDR")
    with pytest.raises(ValueError, match="MASTER_ADDR expected, but not set"):
        rendezvous.parse_init_method("env://")


def test_tcp_init_method_needs_rank_and_world_size():
    assert rendezvous.parse_init_method("tcp://10.0.0.1:1234", 0, 2) == ("10.0.0.1", 1234, 0, 2)
    assert rendezvous.parse_init_method("tcp://h:5?rank=1&world_size=2") == ("h", 5, 1, 2)
    with pytest.raises(ValueError, match="needs rank and world_size"):
        rendezvous.parse_init_method("tcp://h:5")
    with pytest.raises(ValueError, match="not in a world of size 2"):
        rendezvous.parse_init_method("tcp://h:5", 2, 2)
    with pytest.raises(ValueError, match="file://"):
        rendezvous.parse_init_method("file:///tmp/x", 0, 1)


def test_the_pmi_service_gives_the_world_its_own_name():
    keys = {}
    init = pmi_service.answer("cmd=init pmi_version=1 pmi_subversion=1", "w7", keys)
    assert init.startswith("cmd=response_to_init rc=0")
    assert pmi_service.answer("cmd=get_my_kvsname", "w7", keys) == "cmd=my_kvsname rc=0 kvsname=w7"
    assert pmi_service.answer("cmd=put kvsname=w7 key=k value=v", "w7", keys) == "cmd=put_result rc=0"
    assert pmi_service.answer("cmd=get kvsname=w7 key=k", "w7", keys) == "cmd=get_result rc=0 value=v"
    assert "rc=-1" in pmi_service.answer("cmd=get kvsname=w7 key=other", "w7", keys)
    assert "rc=-1" in pmi_service.answer("cmd=spawn nprocs=2", "w7", keys)


def test_gloo_is_accepted_as_mpi_and_said_once():
    code = textwrap.dedent("""
        import warnings, distgrad.distributed as dist
        from distgrad.distributed import world
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert world._backend_name("gloo") == "mpi" and world._backend_name("cpu:gloo,cuda:nccl") == "nccl"
        assert any("no Gloo" in str(w.message) for w in caught), caught
        dist.init_process_group("gloo")
        assert dist.get_backend() == "mpi" and dist.get_world_size() == 1
        dist.destroy_process_group()
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], env=_clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
