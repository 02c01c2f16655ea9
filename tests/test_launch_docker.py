"""docker/Dockerfile, checked without a Docker engine: base image, MPI, CuPy, mpi4py, distgrad."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def instructions() -> list:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    with open(os.path.join(ROOT, "docker", "Dockerfile")) as f:
        text = re.sub(r"\\\n", " ", f.read())
    return [tuple(line.split(None, 1)) for line in (raw.strip() for raw in text.splitlines())
            if line and not line.startswith("#")]


def runs() -> str:
    return "\n".join(args for op, args in instructions() if op == "RUN")


def test_the_base_image_is_a_cuda_12_runtime():
    first = instructions()[0]
    assert first[0] == "FROM" and re.fullmatch(r"nvidia/cuda:12\.\d+\.\d+-(cudnn-)?runtime-\S+", first[1])


def test_it_installs_an_mpi_nccl_cupy_and_mpi4py():
    assert re.search(r"\b(openmpi-bin|mpich)\b", runs())
    assert "libnccl2" in runs()
    assert '"cupy-cuda12x' in runs()
    assert "--no-binary=mpi4py" in runs()  # built against the image's MPI, not a wheel's


def test_it_installs_distgrad_from_the_copied_sources():
    copied = [path for args in (a for op, a in instructions() if op == "COPY") for path in args.split()[:-1]]
    for path in copied:
        assert os.path.exists(os.path.join(ROOT, path)), f"COPY {path}: no such file in the repository"
    assert {"pyproject.toml", "distgrad", "launch"} <= set(copied)
    assert re.search(r"pip install \.( |$)", runs())
    assert "import distgrad, distgrad.distributed, distgrad.launch" in runs()


def test_the_readme_shows_a_multi_gpu_run():
    with open(os.path.join(ROOT, "docker", "README.md")) as f:
        readme = f.read()
    assert "docker build -f docker/Dockerfile" in readme
    assert "--gpus all" in readme and "--ipc=host" in readme
    assert "distgrad-launch -n 4" in readme
