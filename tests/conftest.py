"""Shared fixtures: ``device`` runs a test on the CPU and, where CuPy sees a GPU, on the GPU too."""
import pytest

from distgrad import backend

CUDA = backend.cuda_is_available()


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    if request.param == "cuda" and not CUDA:
        pytest.skip("needs CuPy and a GPU")
    return request.param
