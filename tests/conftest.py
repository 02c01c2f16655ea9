"""Shared fixtures: ``device`` runs a test on the CPU and, where CuPy sees a GPU, on the GPU too;
``scale_out_ranks`` runs the ZeRO, SyncBatchNorm and Join cases on 2 and 3 ranks once for all their tests.

The tests that need the real MNIST read ``$DISTGRAD_DATA/mnist``. Unset, it defaults to the data
kept beside the repository (``../shared/data``, as in CI), else to the download cache
(``~/.cache/distgrad``), downloading MNIST there once if a mirror answers; without any they skip.
"""
import os
import socket

import pytest

from distgrad import backend, envvars

CUDA = backend.cuda_is_available()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.expanduser(os.path.join("~", ".cache", "distgrad"))


def _default_data_root():
    for candidate in (os.path.join(os.path.dirname(ROOT), "shared", "data"), CACHE):
        if os.path.isfile(os.path.join(candidate, "mnist", "train-images-idx3-ubyte.gz")):
            return candidate
    return _downloaded_root()


def _downloaded_root():
    """The download cache after fetching MNIST into it (a new machine with a network), or None when
    no mirror answers within a few seconds (then the tests that need MNIST skip, saying so)."""
    if os.environ.get("DISTGRAD_TEST_DOWNLOAD", "1") == "0":
        return None
    import socket
    import urllib.parse

    from distgrad.data import MNIST, DatasetNotFoundError

    host = urllib.parse.urlparse(MNIST.mirrors[0]).hostname
    try:  # an offline machine must not stall the test session on the downloads' longer timeouts
        socket.create_connection((host, 443), timeout=3).close()
        for train in (True, False):
            MNIST(root=CACHE, train=train, download=True)
        return CACHE
    except (DatasetNotFoundError, OSError):
        return None


if not os.environ.get(envvars.DATA_ROOT):
    _found = _default_data_root()
    if _found:
        os.environ[envvars.DATA_ROOT] = _found  # before the test modules read it


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    if request.param == "cuda" and not CUDA:
        pytest.skip("needs CuPy and a GPU")
    return request.param


@pytest.fixture(scope="session", params=(2, 3), ids=lambda n: f"world{n}")
def scale_out_ranks(request, tmp_path_factory):
    """The reports of ``ddp_scripts/scale_out_cases.py`` (ZeRO, SyncBatchNorm, Join) run once per world size
    under ``mpiexec -n N``, shared by test_zero.py, test_sync_batchnorm.py and test_join.py."""
    pytest.importorskip("mpi4py")
    from distributed_scripts import runner
    report_dir = str(tmp_path_factory.mktemp(f"scale_out_world{request.param}"))
    script = os.path.join(os.path.dirname(__file__), "ddp_scripts", "scale_out_cases.py")
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}  # PyTorch's gloo, for the Join check
    finished = runner.run(runner.mpiexec_python(request.param, os.path.relpath(script, runner.SCRIPTS), report_dir),
                          env=env, limit_s=180)
    return runner.reports_of(finished, report_dir, request.param)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
