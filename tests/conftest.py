"""Shared fixtures: ``device`` runs a test on the CPU and, where CuPy sees a GPU, on the GPU too.

The tests that need the real MNIST read ``$DISTGRAD_DATA/mnist``. Unset, it defaults to the data
kept beside the repository (``../shared/data``, as in CI), else to the download cache
(``~/.cache/distgrad``) when MNIST was downloaded there before; without either they skip.
"""
import os

import pytest

from distgrad import backend, envvars

CUDA = backend.cuda_is_available()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _default_data_root():
    for candidate in (os.path.join(os.path.dirname(ROOT), "shared", "data"),
                      os.path.expanduser(os.path.join("~", ".cache", "distgrad"))):
        if os.path.isfile(os.path.join(candidate, "mnist", "train-images-idx3-ubyte.gz")):
            return candidate
    return None


if not os.environ.get(envvars.DATA_ROOT) and _default_data_root():
    os.environ[envvars.DATA_ROOT] = _default_data_root()  # before the test modules read it


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    if request.param == "cuda" and not CUDA:
        pytest.skip("needs CuPy and a GPU")
    return request.param
